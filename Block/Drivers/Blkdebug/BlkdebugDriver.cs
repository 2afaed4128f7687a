using System.Numerics;
using Block.Graph;
using Block.Options;

namespace Block.Drivers.Blkdebug;

/// <summary>
/// <c>blkdebug</c>: a filter for tests. It makes its child look like storage with other limits (alignment, transfer
/// sizes) so that the request path's padding and splitting can be exercised on any file, and fails requests when the
/// drivers above it report debug events (<see cref="BlkdebugEvent"/>), by QEMU's rules: <c>inject-error</c> and
/// <c>set-state</c> rules from options or from a <c>config</c> file, and QEMU's <c>blkdebug:CONFIG:IMAGE</c> file names.
/// </summary>
/// <remarks>
/// As in QEMU, an event does not fail anything itself: it activates the matching inject-error rules, and the next
/// request through the blkdebug node that a rule covers fails. So <c>l2_update</c> fails the L2 write that follows it,
/// and <c>read_aio</c> fails a read only where a format (raw, qcow2…) above reports it. A protocol in the file-name
/// sense (<c>blkdebug:</c> names reach it) but a filter in the graph: its content is its image's.
/// </remarks>
public sealed class BlkdebugDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "blkdebug";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Filter;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes => ["blkdebug"];

    /// <inheritdoc />
    /// <remarks><c>blkdebug:CONFIG:IMAGE</c>; an empty CONFIG means no rules file. IMAGE is a protocol file name.</remarks>
    public override BlockdevOptions OptionsFromFilename(string filename)
    {
        string rest = filename.StartsWith("blkdebug:", StringComparison.Ordinal) ? filename["blkdebug:".Length..] : filename;
        int colon = rest.IndexOf(':');
        if (colon < 0)
            throw new BlockOptionsException("blkdebug requires both config file and image path");
        return new BlockdevOptionsBlkdebug
        {
            Config = colon == 0 ? null : rest[..colon],
            ImageFilename = rest[(colon + 1)..],
        };
    }

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        BlockdevOptionsBlkdebug? fromName = null;
        if (reader.String("filename") is { } filename)
        {
            fromName = (BlockdevOptionsBlkdebug)OptionsFromFilename(filename);
            if (reader.Has("image"))
                fromName = null;
        }
        var rules = new List<BlkdebugInjectErrorOptions>();
        foreach (var r in reader.ObjectList("inject-error") ?? [])
        {
            string ev = Event(r);
            rules.Add(new BlkdebugInjectErrorOptions
            {
                Event = ev,
                State = r.Int("state") ?? 0,
                Errno = (int)(r.Int("errno") ?? 5),
                Sector = r.Int("sector") ?? -1,
                Once = r.Bool("once") ?? false,
                Immediately = r.Bool("immediately") ?? false,
                IoType = r.String("iotype") is { } io ? ParseIoType(io, r.FullName("iotype")) : BlkdebugIoType.Default,
            });
            r.Finish();
        }
        var states = new List<BlkdebugSetStateOptions>();
        foreach (var r in reader.ObjectList("set-state") ?? [])
        {
            string ev = Event(r);
            states.Add(new BlkdebugSetStateOptions
            {
                Event = ev,
                State = r.Int("state") ?? 0,
                NewState = r.Int("new_state") ?? throw r.Missing("new_state"),
            });
            r.Finish();
        }
        string? config = reader.String("config") ?? fromName?.Config;
        return new BlockdevOptionsBlkdebug
        {
            Image = fromName != null ? BlockdevRef.ToNode(string.Empty) : reader.RequiredRef("image", parser),
            ImageFilename = fromName?.ImageFilename,
            Config = config,
            Align = SizeOption(reader, "align"),
            MaxTransfer = SizeOption(reader, "max-transfer"),
            OptWriteZero = SizeOption(reader, "opt-write-zero"),
            MaxWriteZero = SizeOption(reader, "max-write-zero"),
            OptDiscard = SizeOption(reader, "opt-discard"),
            MaxDiscard = SizeOption(reader, "max-discard"),
            InjectError = rules,
            SetState = states,
        };
    }

    // QEMU reads blkdebug's limits as sizes (QemuOpts), so "4k" is taken (as in 077's file.align=4k).
    private static long? SizeOption(OptionsReader reader, string name) =>
        reader.Size(name) is { } v ? (long)Math.Min(v, long.MaxValue) : null;

    internal static BlkdebugIoType ParseIoType(string value, string name = "iotype") => value switch
    {
        "read" => BlkdebugIoType.Read,
        "write" => BlkdebugIoType.Write,
        "write-zeroes" => BlkdebugIoType.WriteZeroes,
        "discard" => BlkdebugIoType.Discard,
        "flush" => BlkdebugIoType.Flush,
        "block-status" => BlkdebugIoType.BlockStatus,
        _ => throw new BlockOptionsException($"Parameter '{name}' does not accept value '{value}'"),
    };

    private static string Event(OptionsReader r)
    {
        string ev = r.RequiredString("event");
        if (!BlkdebugEventNames.TryParse(ev, out _))
            throw new BlockOptionsException($"Parameter '{r.FullName("event")}' does not accept value '{ev}'");
        return ev;
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var o = (BlockdevOptionsBlkdebug)context.Options;
        int align = (int)(o.Align ?? 1);
        if (align < 1 || align > (1 << 30) || !BitOperations.IsPow2(align))
            throw new BlockOptionsException("Cannot meet constraints with align " + (o.Align ?? 1));
        CheckMultiple("max-transfer", o.MaxTransfer, align);
        CheckMultiple("opt-write-zero", o.OptWriteZero, align);
        CheckMultiple("max-write-zero", o.MaxWriteZero, Math.Max(align, o.OptWriteZero ?? 1));
        CheckMultiple("opt-discard", o.OptDiscard, align);
        CheckMultiple("max-discard", o.MaxDiscard, Math.Max(align, o.OptDiscard ?? 1));
        var limits = new BlockLimits
        {
            RequestAlignment = align,
            MaxTransfer = (int)(o.MaxTransfer ?? 0),
            WriteZeroesAlignment = (int)(o.OptWriteZero ?? 0),
            MaxWriteZeroes = o.MaxWriteZero ?? 0,
            DiscardAlignment = (int)(o.OptDiscard ?? 0),
            MaxDiscard = o.MaxDiscard ?? 0,
        };
        var inject = new List<BlkdebugInjectErrorOptions>();
        var setState = new List<BlkdebugSetStateOptions>();
        if (o.Config is { } config)
            (inject, setState) = BlkdebugConfigFile.Read(config);
        inject.AddRange(o.InjectError);
        setState.AddRange(o.SetState);
        BlockdevRef imageRef = o.ImageFilename is { } name ? context.Graph.Drivers.ProtocolFor(name).OptionsFromFilename(name) : o.Image;
        var image = await context.OpenChildAsync("image", imageRef, ChildRole.Filtered | ChildRole.Primary, cancellationToken).ConfigureAwait(false);
        return new BlkdebugNodeDriver(context.Node, image.Node, limits, inject, setState);
    }

    private static void CheckMultiple(string name, long? value, long align)
    {
        if (value is { } v && (v < 0 || v % align != 0 || v > int.MaxValue))
            throw new BlockOptionsException($"Cannot meet constraints with {name} {v}");
    }
}
