using System.Text;
using Block.Cli.Common;
using Block.Graph;

namespace Block.Cli.Img;

/// <summary><c>blk map</c>: qemu-img map, entry for entry.</summary>
internal static class MapCommand
{
    private sealed record Entry(long Start, long Length, int Depth, bool Present, bool Zero, bool Data, long? Offset, string? Filename);

    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("f:hU", ImgCommon.LongOptions(("format", true, "f"), ("output", true, "output"),
            ("start-offset", true, "start-offset"), ("max-length", true, "max-length")));
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        bool json = false;
        long start = 0;
        long? maxLength = null;
        foreach (var (code, arg) in options)
        {
            if (common.Apply(code, arg))
            {
                if (common.Exit is { } exit)
                    return exit;
                continue;
            }
            switch (code)
            {
                case "output":
                    if (!ImgCommon.TryParseOutput(cli, arg!, out json))
                        return 1;
                    break;
                case "start-offset":
                    if (!ImgCommon.TryParseSize(cli, arg!, "start offset", out start))
                        return 1;
                    break;
                case "max-length":
                    if (!ImgCommon.TryParseSize(cli, arg!, "max length", out long max))
                        return 1;
                    maxLength = max;
                    break;
            }
        }
        if (operands.Count != 1)
            return Blk.Usage(cli, "Expecting one image file name");

        var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = operands[0],
            Format = common.Format,
            ImageOpts = common.ImageOpts,
            ReadOnly = true,
            ForceShare = common.ForceShare,
        });
        if (backend is null)
            return 1;

        var root = backend.Root!;
        long length = root.Length;
        long end = maxLength is { } m ? Math.Min(length, start > long.MaxValue - m ? long.MaxValue : start + m) : length;
        var output = new StringBuilder();
        if (!json)
            output.Append("Offset          Length          Mapped to       File\n");

        bool first = true;
        var current = new Entry(start, 0, 0, false, false, false, null, null);
        try
        {
            for (long offset = start; offset < end;)
            {
                long n = Math.Min(1L << 30, end - offset);
                var (status, depth) = await root.GetBlockStatusAboveAsync(offset, n);
                if (status.Bytes <= 0)
                    break;
                var entry = new Entry(offset, status.Bytes, depth,
                    status.Has(BlockStatusFlags.Allocated),
                    status.Has(BlockStatusFlags.Zero),
                    status.Has(BlockStatusFlags.Data),
                    status.Has(BlockStatusFlags.OffsetValid) ? status.HostOffset : null,
                    status.File?.Filename);
                if (current.Length > 0 && CanMerge(current, entry))
                {
                    current = current with { Length = current.Length + entry.Length };
                }
                else
                {
                    if (current.Length > 0 && !Dump(cli, output, current, json, ref first))
                        return 1;
                    current = entry;
                }
                offset += status.Bytes;
            }
        }
        catch (BlockException e)
        {
            cli.Out.Write(output.ToString());
            cli.Error($"Could not get block status: {e.Message}");
            return 1;
        }
        if (!Dump(cli, output, current, json, ref first))
            return 1;
        if (json)
            output.Append("]\n");
        cli.Out.Write(output.ToString());
        return 0;
    }

    private static bool CanMerge(Entry a, Entry b) =>
        a.Depth == b.Depth && a.Present == b.Present && a.Zero == b.Zero && a.Data == b.Data && a.Filename == b.Filename
        && (a.Offset is null) == (b.Offset is null) && (a.Offset is null || a.Offset + a.Length == b.Offset);

    /// <summary>Appends one entry; false (after printing what came before and the error) when the human form cannot show it.</summary>
    private static bool Dump(CliContext cli, StringBuilder sb, Entry e, bool json, ref bool first)
    {
        if (json)
        {
            sb.Append(first ? "[" : ",\n");
            first = false;
            sb.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"{{ \"start\": {e.Start}, \"length\": {e.Length}, \"depth\": {e.Depth}, \"present\": {Bool(e.Present)}, \"zero\": {Bool(e.Zero)}, \"data\": {Bool(e.Data)}");
            if (e.Offset is { } o)
                sb.Append(System.Globalization.CultureInfo.InvariantCulture, $", \"offset\": {o}");
            sb.Append('}');
            return true;
        }
        if (e.Data && e.Offset is null)
        {
            // Data with no host offset to show: compressed (or encrypted, or in an external file QEMU cannot name).
            cli.Out.Write(sb.ToString());
            cli.Error("File contains external, encrypted or compressed clusters.");
            return false;
        }
        if (e.Data && !e.Zero && e.Offset is { } offset)
            sb.Append($"{QemuText.AltHex(e.Start),-16}{QemuText.AltHex(e.Length),-16}{QemuText.AltHex(offset),-16}{e.Filename}\n");
        return true;
    }

    private static string Bool(bool b) => b ? "true" : "false";
}
