using System.Numerics;
using Block.Graph;
using Block.Options;

namespace Block.Drivers.Blkdebug;

/// <summary>
/// <c>blkdebug</c>: a filter for tests. It makes its child look like storage with other limits (alignment, transfer
/// sizes) so that the request path's padding and splitting can be exercised on any file, and fails requests on
/// command.
/// </summary>
/// <remarks>
/// QEMU's blkdebug fires rules on internal events of format drivers; here a rule's event names the kind of request
/// it fails (<c>read_aio</c> reads, <c>write_aio</c> writes, <c>flush_to_disk</c> flushes, <c>write_zeroes</c>,
/// <c>discard</c>), which is what tests of error policies and crash safety need. The <c>config</c> file and
/// <c>set-state</c> rules are refused rather than ignored.
/// </remarks>
public sealed class BlkdebugDriver : BlockDriver
{
    internal static readonly string[] Events = ["read_aio", "write_aio", "flush_to_disk", "write_zeroes", "discard"];

    /// <inheritdoc />
    public override string Name => "blkdebug";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Filter;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        if (reader.String("config") != null)
            throw new BlockOptionsException("blkdebug: the 'config' option is not supported; use 'inject-error'");
        if (reader.ObjectList("set-state") is { Count: > 0 })
            throw new BlockOptionsException("blkdebug: 'set-state' rules are not supported");
        var rules = new List<BlkdebugInjectErrorOptions>();
        foreach (var r in reader.ObjectList("inject-error") ?? [])
        {
            string ev = r.RequiredString("event");
            if (!Events.Contains(ev))
                throw new BlockOptionsException($"Parameter '{r.FullName("event")}' does not accept value '{ev}'");
            if (r.String("state") != null || r.String("iotype") != null)
                throw new BlockOptionsException("blkdebug: 'state' and 'iotype' are not supported in inject-error rules");
            rules.Add(new BlkdebugInjectErrorOptions
            {
                Event = ev,
                Errno = (int)(r.Int("errno") ?? 5),
                Sector = r.Int("sector") ?? -1,
                Once = r.Bool("once") ?? false,
                Immediately = r.Bool("immediately") ?? false,
            });
            r.Finish();
        }
        return new BlockdevOptionsBlkdebug
        {
            Image = reader.RequiredRef("image", parser),
            Align = reader.Int("align"),
            MaxTransfer = reader.Int("max-transfer"),
            OptWriteZero = reader.Int("opt-write-zero"),
            MaxWriteZero = reader.Int("max-write-zero"),
            OptDiscard = reader.Int("opt-discard"),
            MaxDiscard = reader.Int("max-discard"),
            InjectError = rules,
        };
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
        var image = await context.OpenChildAsync("image", o.Image, ChildRole.Filtered | ChildRole.Primary, cancellationToken).ConfigureAwait(false);
        return new BlkdebugNodeDriver(context.Node, image.Node, limits, o.InjectError);
    }

    private static void CheckMultiple(string name, long? value, long align)
    {
        if (value is { } v && (v < 0 || v % align != 0 || v > int.MaxValue))
            throw new BlockOptionsException($"Cannot meet constraints with {name} {v}");
    }
}
