using System.Globalization;
using Block.Cli.Common;
using Block.Qapi;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk snapshot</c>: qemu-img snapshot. <c>-l</c> lists (no action opens the image and does nothing, as qemu-img), <c>-c</c> creates, <c>-a</c> applies (by id,
/// else by name), <c>-d</c> deletes (by name) internal snapshots; exit 1 on any failure.
/// </summary>
internal static class SnapshotCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("la:c:d:hqU", ImgCommon.LongOptions());
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        char action = '\0';
        string? name = null;
        foreach (var (code, arg) in options)
        {
            if (code is "l" or "a" or "c" or "d")
            {
                if (action != '\0')
                    return Blk.Usage(cli, "Cannot mix '-l', '-a', '-c', '-d'");
                action = code[0];
                name = arg;
                continue;
            }
            if (common.Apply(code, arg) && common.Exit is { } exit)
                return exit;
        }
        if (operands.Count != 1)
            return Blk.Usage(cli, "Expecting one image file name");

        var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = operands[0],
            ImageOpts = common.ImageOpts,
            ReadOnly = action == 'l',
            ForceShare = common.ForceShare,
        });
        if (backend is null)
            return 1;
        var node = backend.Root!;
        switch (action)
        {
            case '\0':
                // As qemu-img 7.2: without an action the image is opened read-write and nothing else happens.
                return 0;
            case 'l':
                WriteList(cli.Out, node.Snapshots);
                return 0;
            case 'c':
                try
                {
                    var now = DateTimeOffset.UtcNow;
                    long micros = now.ToUnixTimeMilliseconds() * 1000 + now.Ticks / 10 % 1000;
                    await node.CreateSnapshotAsync(new SnapshotInfo
                    {
                        Id = string.Empty,
                        Name = name!,
                        DateSec = micros / 1_000_000,
                        DateNsec = micros % 1_000_000 * 1000,
                        Icount = 0,
                    });
                    return 0;
                }
                catch (BlockException e)
                {
                    cli.Error($"Could not create snapshot '{name}': {-(int)e.Errno} ({ErrnoText.Describe(e.Errno)})");
                    return 1;
                }
            case 'a':
                try
                {
                    await node.ApplySnapshotAsync(name!);
                    return 0;
                }
                catch (BlockException e)
                {
                    // QEMU's raw driver has no snapshots of its own: it closes, tries its file, and opens again,
                    // which prints the probing warning a second time.
                    if (e.Errno == Errno.ENOTSUP && common.Format is null && !common.ImageOpts && ImageOpener.IsProbedRaw(node))
                        ImageOpener.WarnProbedRaw(cli, operands[0]);
                    cli.Error($"Could not apply snapshot '{name}': {e.Message}");
                    return 1;
                }
            default:
                try
                {
                    await node.DeleteSnapshotAsync(null, name);
                    return 0;
                }
                catch (BlockException e)
                {
                    cli.Error($"Could not delete snapshot '{name}': {e.Message}");
                    return 1;
                }
        }
    }

    /// <summary>QEMU's snapshot table (<c>bdrv_snapshot_dump</c>), nothing at all when there are none.</summary>
    internal static void WriteList(TextWriter w, IReadOnlyList<SnapshotInfo> snapshots)
    {
        if (snapshots.Count == 0)
            return;
        w.WriteLine("Snapshot list:");
        WriteTable(w, snapshots);
    }

    /// <summary>The header line and one line per snapshot, as <c>qemu-img info</c> and <c>snapshot -l</c> print them.</summary>
    internal static void WriteTable(TextWriter w, IReadOnlyList<SnapshotInfo> snapshots)
    {
        w.WriteLine($"{"ID",-10}{"TAG",-17}{"VM SIZE",8}{"DATE",20}{"VM CLOCK",13}{"ICOUNT",11}");
        foreach (var s in snapshots)
        {
            string date = DateTimeOffset.FromUnixTimeSeconds(s.DateSec).ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
            long secs = s.VmClockSec;
            string clock = string.Create(CultureInfo.InvariantCulture, $"{secs / 3600:00}:{secs / 60 % 60:00}:{secs % 60:00}.{s.VmClockNsec / 1_000_000 % 1000:000}");
            string size = QemuText.HumanSize((ulong)s.VmStateSize);
            string icount = s.Icount is { } i ? i.ToString(CultureInfo.InvariantCulture) : string.Empty;
            w.WriteLine($"{s.Id,-9} {s.Name,-16} {size,8}{date,20}{clock,13}{icount,11}");
        }
    }
}
