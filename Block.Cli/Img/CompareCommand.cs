using Block.Cli.Common;
using Block.Graph;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk compare</c>: qemu-img compare. Exit 0 when the contents are identical, 1 when they differ (or, with
/// <c>-s</c>, when sizes or allocation differ), 2 on errors.
/// </summary>
internal static class CompareCommand
{
    private const int ChunkSize = 2 << 20;
    private const BlockStatusFlags StrictMask = BlockStatusFlags.Data | BlockStatusFlags.Zero | BlockStatusFlags.Allocated | BlockStatusFlags.Eof;

    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("hf:F:T:pqsU", ImgCommon.LongOptions());
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph, errorExit: 2);
        string? format2 = null;
        bool progress = false, strict = false;
        var cache = CacheMode.Writeback;
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
                case "F":
                    format2 = arg;
                    break;
                case "T":
                    if (!ImgCommon.TryParseCache(cli, arg!, out cache))
                        return 2;
                    break;
                case "p":
                    progress = true;
                    break;
                case "s":
                    strict = true;
                    break;
            }
        }
        if (operands.Count != 2)
            return Blk.Usage(cli, "Expecting two image file names");

        var a = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = operands[0], Format = common.Format, ImageOpts = common.ImageOpts, ReadOnly = true, ForceShare = common.ForceShare, Cache = cache,
        });
        if (a is null)
            return 2;
        var b = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = operands[1], Format = format2, ImageOpts = common.ImageOpts, ReadOnly = true, ForceShare = common.ForceShare, Cache = cache,
        });
        if (b is null)
            return 2;

        var output = common.Quiet ? TextWriter.Null : cli.Out;
        var meter = new Progress(progress && !common.Quiet ? cli.Out : null, 2.0);
        try
        {
            int result = await CompareAsync(a.Root!, b.Root!, operands[0], operands[1], strict, output, meter);
            meter.End();
            return result;
        }
        catch (ReadFailure e)
        {
            meter.End();
            cli.Error($"Error while reading offset {e.Offset} of {e.Filename}: {ErrnoText.Describe(e.Errno)}");
            return 4;
        }
        catch (BlockException e)
        {
            meter.End();
            cli.Error($"Error while reading: {e.Message}");
            return 2;
        }
    }

    /// <summary>A data read that failed, reported as qemu-img reports it (exit code 4).</summary>
    private sealed class ReadFailure(long offset, string filename, Errno errno) : Exception
    {
        public long Offset { get; } = offset;

        public string Filename { get; } = filename;

        public Errno Errno { get; } = errno;
    }

    private static async ValueTask ReadAsync(BlockNode node, string filename, long offset, Memory<byte> buffer)
    {
        try
        {
            await node.ReadAsync(offset, buffer);
        }
        catch (BlockException e)
        {
            throw new ReadFailure(offset, filename, e.Errno);
        }
    }

    private static async Task<int> CompareAsync(BlockNode a, BlockNode b, string nameA, string nameB, bool strict, TextWriter output, Progress meter)
    {
        long lenA = a.Length, lenB = b.Length;
        long total = Math.Max(lenA, lenB);
        long common = Math.Min(lenA, lenB);
        meter.Report(0, force: true);
        if (strict && lenA != lenB)
        {
            output.WriteLine("Strict mode: Image size mismatch!");
            return 1;
        }

        var bufA = new byte[ChunkSize];
        var bufB = new byte[ChunkSize];
        for (long offset = 0; offset < common;)
        {
            var (sa, _) = await a.GetBlockStatusAboveAsync(offset, common - offset);
            var (sb, _) = await b.GetBlockStatusAboveAsync(offset, common - offset);
            long chunk = Math.Min(Math.Max(sa.Bytes, 1), Math.Max(sb.Bytes, 1));
            chunk = Math.Min(chunk, common - offset);
            if (strict && (sa.Flags & StrictMask) != (sb.Flags & StrictMask))
            {
                output.WriteLine($"Strict mode: Offset {offset} block status mismatch!");
                return 1;
            }
            bool zeroA = sa.Has(BlockStatusFlags.Zero), zeroB = sb.Has(BlockStatusFlags.Zero);
            if (!(zeroA && zeroB))
            {
                for (long pos = offset; pos < offset + chunk;)
                {
                    int n = (int)Math.Min(ChunkSize, offset + chunk - pos);
                    if (zeroA)
                        Array.Clear(bufA, 0, n);
                    else
                        await ReadAsync(a, nameA, pos, bufA.AsMemory(0, n));
                    if (zeroB)
                        Array.Clear(bufB, 0, n);
                    else
                        await ReadAsync(b, nameB, pos, bufB.AsMemory(0, n));
                    int diff = bufA.AsSpan(0, n).CommonPrefixLength(bufB.AsSpan(0, n));
                    if (diff < n)
                    {
                        output.WriteLine($"Content mismatch at offset {MismatchOffset(offset, pos + diff)}!");
                        return 1;
                    }
                    pos += n;
                }
            }
            offset += chunk;
            meter.Report(100.0 * offset / total);
        }

        if (lenA != lenB)
        {
            output.WriteLine("Warning: Image size mismatch!");
            var longer = lenA > lenB ? a : b;
            var buf = bufA;
            for (long offset = common; offset < total;)
            {
                var (s, _) = await longer.GetBlockStatusAboveAsync(offset, total - offset);
                long chunk = Math.Min(Math.Max(s.Bytes, 1), total - offset);
                if (!s.Has(BlockStatusFlags.Zero))
                {
                    for (long pos = offset; pos < offset + chunk;)
                    {
                        int n = (int)Math.Min(ChunkSize, offset + chunk - pos);
                        await ReadAsync(longer, lenA > lenB ? nameA : nameB, pos, buf.AsMemory(0, n));
                        int nonZero = buf.AsSpan(0, n).IndexOfAnyExcept((byte)0);
                        if (nonZero >= 0)
                        {
                            output.WriteLine($"Content mismatch at offset {MismatchOffset(offset, pos + nonZero)}!");
                            return 1;
                        }
                        pos += n;
                    }
                }
                offset += chunk;
                meter.Report(100.0 * offset / total);
            }
        }
        output.WriteLine("Images are identical.");
        return 0;
    }

    /// <summary>qemu-img reports the first differing 512-byte sector, counted from the start of the chunk.</summary>
    private static long MismatchOffset(long chunkStart, long firstDifference) =>
        chunkStart + (firstDifference - chunkStart) / 512 * 512;
}
