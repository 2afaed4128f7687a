using System.Globalization;
using Block.Cli.Common;
using Block.Graph;
using Block.Options;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk convert</c>: qemu-img convert. Sources are concatenated into the target; zero and unallocated areas are
/// skipped on a fresh target (or zeroed with <c>-n</c>), and runs of zero bytes at least <c>-S</c> long inside
/// data are left sparse.
/// </summary>
internal static class ConvertCommand
{
    private const int BufferSize = 2 << 20;
    private const int Sector = 512;

    private sealed record Source(BlockBackend Backend, long Length);

    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:", ImgCommon.LongOptions(
            ("target-image-opts", false, "target-image-opts"), ("salvage", false, "salvage"), ("target-is-zero", false, "target-is-zero"),
            ("bitmaps", false, "bitmaps"), ("skip-broken-bitmaps", false, "skip-broken-bitmaps")));
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        string? outputFormat = null, backingFile = null, backingFormat = null, snapshot = null;
        var optionTexts = new List<string>();
        bool targetImageOpts = false, compress = false, progress = false;
        bool skipCreate = false, outOfOrder = false, targetIsZero = false;
        long minSparse = 8 * Sector;
        int coroutines = 8;
        var targetCache = CacheMode.Unsafe;
        var sourceCache = CacheMode.Writeback;
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
                case "O":
                    outputFormat = arg;
                    break;
                case "B":
                    backingFile = arg;
                    break;
                case "F":
                    backingFormat = arg;
                    break;
                case "c":
                    compress = true;
                    break;
                case "o":
                    optionTexts.Add(arg!);
                    break;
                case "l":
                    snapshot = arg;
                    break;
                case "S":
                    if (!SizeParser.TryParse(arg!, out ulong sparse))
                    {
                        cli.Error("Invalid buffer size for sparse output specified. You may use k, M, G, T, P or E suffixes for");
                        cli.Error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
                        return 1;
                    }
                    if (sparse % Sector != 0 || sparse > 16 << 20)
                    {
                        cli.Error("Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 up to 16777216. Select 0 to disable sparse detection (fully allocates output).");
                        return 1;
                    }
                    minSparse = (long)sparse;
                    break;
                case "p":
                    progress = true;
                    break;
                case "t":
                    if (!ImgCommon.TryParseCache(cli, arg!, out targetCache))
                        return 1;
                    break;
                case "T":
                    if (!ImgCommon.TryParseCache(cli, arg!, out sourceCache))
                        return 1;
                    break;
                case "n":
                    skipCreate = true;
                    break;
                case "m":
                    if (!int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out coroutines) || coroutines < 1 || coroutines > 16)
                    {
                        cli.Error("Invalid number of coroutines. Allowed number of coroutines is between 1 and 16");
                        return 1;
                    }
                    break;
                case "W":
                    outOfOrder = true;
                    break;
                case "r":
                    if (!ImgCommon.TryParseSize(cli, arg!, "rate limit", out _))
                        return 1;
                    break;
                case "target-image-opts":
                    targetImageOpts = true;
                    break;
                case "target-is-zero":
                    targetIsZero = true;
                    break;
                case "C":
                case "salvage":
                case "bitmaps":
                case "skip-broken-bitmaps":
                    break;
            }
        }

        string format = outputFormat ?? "raw";
        if (optionTexts.Any(CreateCommand.IsHelp))
            return CreateCommand.PrintOptionHelp(cli, graph, format, operands.Count > 0 ? operands[^1] : null);
        if (operands.Count < 2)
        {
            cli.Error("Must specify image file name");
            return 1;
        }
        if (skipCreate && optionTexts.Count > 0)
        {
            cli.Error("-o has no effect when skipping image creation");
            return 1;
        }
        if (targetIsZero && !skipCreate)
        {
            cli.Error("--target-is-zero requires use of -n flag");
            return 1;
        }
        if (snapshot != null)
        {
            cli.Error("Failed to load snapshot: this image format does not support internal snapshots");
            return 1;
        }
        string target = operands[^1];
        progress &= !common.Quiet;

        var sources = new List<Source>();
        foreach (var name in operands.Take(operands.Count - 1))
        {
            var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
            {
                Filename = name, Format = common.Format, ImageOpts = common.ImageOpts, ReadOnly = true, ForceShare = common.ForceShare,
                Cache = sourceCache, Exclusive = !common.ForceShare,
            });
            if (backend is null)
                return 1;
            sources.Add(new Source(backend, backend.Length));
        }
        long total = sources.Sum(s => s.Length);

        var driver = graph.Drivers.Find(format);
        if (driver is null)
        {
            cli.Error($"Unknown file format '{format}'");
            return 1;
        }
        var descriptors = graph.CreateOptionsFor(driver, target);
        if (compress && !descriptors.Any(d => d.Name == "compression_type") && format is not ("qcow" or "vmdk"))
        {
            cli.Error("Compression not supported for this file format");
            return 1;
        }
        if (backingFile != null && !descriptors.Any(d => d.Name == "backing_file"))
        {
            cli.Error($"Backing file not supported for file format '{format}'");
            return 1;
        }

        string? targetSecrets = null;
        if (!skipCreate)
        {
            Dictionary<string, string> createOptions;
            try
            {
                createOptions = CreateCommand.ParseOptionTexts(optionTexts);
            }
            catch (BlockOptionsException e)
            {
                cli.Error(e.Message);
                return 1;
            }
            foreach (var key in createOptions.Keys)
            {
                if (!descriptors.Any(d => d.Name == key))
                {
                    cli.Error($"Invalid parameter '{key}'");
                    return 1;
                }
            }
            createOptions["size"] = total.ToString(CultureInfo.InvariantCulture);
            // qemu-img opens the new image with the secrets it was created with (img_add_key_secrets).
            targetSecrets = KeySecretOptions(createOptions);
            if (backingFile != null)
                createOptions["backing_file"] = backingFile;
            if (backingFormat != null)
                createOptions["backing_fmt"] = backingFormat;
            try
            {
                await graph.CreateImageAsync(format, target, createOptions);
            }
            catch (BlockException e)
            {
                cli.Error($"{target}: error while converting {format}: {e.Message}");
                return 1;
            }
        }

        var output = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = target, Format = targetImageOpts ? null : format, ImageOpts = targetImageOpts, Cache = targetCache,
            Discard = Block.Qapi.BlockdevDiscardOptions.Unmap,
            ExtraOptions = targetSecrets,
        });
        if (output is null)
            return 1;
        if (skipCreate && output.Length < total)
        {
            cli.Error("output file is smaller than input file");
            return 1;
        }

        bool zeroInitialised = (!skipCreate && output.Root!.Impl.HasZeroInit) || targetIsZero;
        var meter = new Progress(progress ? cli.Out : null, 0);
        try
        {
            var copier = new Copier(output, zeroInitialised, minSparse, compress, coroutines, outOfOrder, meter);
            var sourceNodes = sources.Select(s => (s.Backend.Root!, s.Length)).ToList();
            var targetDriver = output.Root!.Impl;
            if (compress || targetDriver.NeedsCompressedWrites)
                await copier.RunWholeClustersAsync(sourceNodes, (int)(targetDriver.ClusterSize ?? 65536));
            else
                await copier.RunAsync(sourceNodes);
            await output.FlushAsync();
        }
        catch (ConvertException e)
        {
            meter.End();
            cli.Error(e.Message);
            return 1;
        }
        meter.End();
        return 0;
    }

    /// <summary>The <c>key-secret</c> and <c>encrypt.key-secret</c> create options as open options (keyval text), or null.</summary>
    private static string? KeySecretOptions(IReadOnlyDictionary<string, string> createOptions)
    {
        var parts = new List<string>();
        foreach (string name in (string[])["key-secret", "encrypt.key-secret"])
        {
            if (createOptions.TryGetValue(name, out var id))
                parts.Add($"{name}={id.Replace(",", ",,", StringComparison.Ordinal)}");
        }
        return parts.Count == 0 ? null : string.Join(',', parts);
    }

    private sealed class ConvertException(string message) : Exception(message);

    /// <summary>A run of the concatenated sources: which source, where in it, how long.</summary>
    private readonly record struct SourceRange(BlockNode Node, long Offset, int Bytes);

    /// <summary>The copy loop: block status decides what to read, sparse detection what to write.</summary>
    /// <remarks>
    /// As in qemu-img, <c>-m</c> chunks are in flight at once: their reads (and a format's decryption or decompression)
    /// overlap, while their writes stay in order unless <c>-W</c> allows any order. Each chunk waits for the one before
    /// it to be written before it writes.
    /// </remarks>
    private sealed class Copier(BlockBackend target, bool zeroInitialised, long minSparse, bool compress, int parallel, bool outOfOrder, Progress meter)
    {
        private long _allocatedTotal;
        private long _allocatedDone;

        public async Task RunAsync(IReadOnlyList<(BlockNode Node, long Length)> sources)
        {
            meter.Report(0, force: true);
            _allocatedTotal = 0;
            foreach (var (node, length) in sources)
            {
                await foreach (var (_, bytes, zero) in Extents(node, length))
                {
                    if (!zero || minSparse == 0)
                        _allocatedTotal += bytes;
                }
            }

            long targetOffset = 0;
            using var gate = new SemaphoreSlim(parallel);
            var pending = new List<Task>();
            Task? previous = null;
            foreach (var (node, length) in sources)
            {
                await foreach (var (offset, bytes, zero) in Extents(node, length))
                {
                    long destination = targetOffset + offset;
                    if (zero && minSparse > 0)
                    {
                        if (!zeroInitialised)
                        {
                            if (!outOfOrder && previous != null)
                                await previous;
                            await Write(() => target.WriteZeroesAsync(destination, bytes, Graph.RequestFlags.MayUnmap), destination);
                        }
                        continue;
                    }
                    await gate.WaitAsync();
                    var task = CopyChunkAsync(node, offset, destination, (int)bytes, zero, gate, outOfOrder ? null : previous);
                    previous = task;
                    if (parallel == 1)
                        await task;
                    else
                        pending.Add(task);
                }
                targetOffset += length;
            }
            await Task.WhenAll(pending);
            meter.Report(100, force: true);
        }

        /// <summary>
        /// The copy for compressed output (<c>-c</c>, or a target that stores only compressed clusters, as VMDK
        /// streamOptimized does): the target is filled in cluster-aligned chunks, every cluster written whole and
        /// once; only clusters that are entirely zero are skipped. Runs of data clusters go down as one request, so the
        /// format can compress them in parallel.
        /// </summary>
        public async Task RunWholeClustersAsync(IReadOnlyList<(BlockNode Node, long Length)> sources, int clusterSize)
        {
            meter.Report(0, force: true);
            long total = sources.Sum(s => s.Length);
            int chunk = Math.Max(clusterSize, BufferSize / clusterSize * clusterSize);
            var buffer = target.Graph.Buffers.Rent(chunk);
            try
            {
                for (long offset = 0; offset < total; offset += chunk)
                {
                    int bytes = (int)Math.Min(chunk, total - offset);
                    var memory = buffer.Memory[..bytes];
                    bool allZero = true;
                    foreach (var range in Ranges(sources, offset, bytes))
                    {
                        var (status, _) = await range.Node.GetBlockStatusAboveAsync(range.Offset, range.Bytes);
                        if (!status.Has(BlockStatusFlags.Zero) || status.Bytes < range.Bytes)
                        {
                            allZero = false;
                            break;
                        }
                    }
                    if (allZero)
                    {
                        if (!zeroInitialised)
                            await Write(() => target.WriteZeroesAsync(offset, bytes, Graph.RequestFlags.MayUnmap), offset);
                    }
                    else
                    {
                        int pos = 0;
                        foreach (var range in Ranges(sources, offset, bytes))
                        {
                            try
                            {
                                await range.Node.ReadAsync(range.Offset, memory.Slice(pos, range.Bytes));
                            }
                            catch (BlockException e)
                            {
                                throw new ConvertException($"error while reading at byte {range.Offset}: {e.Message}");
                            }
                            pos += range.Bytes;
                        }
                        await WriteClustersAsync(memory, offset, clusterSize);
                    }
                    meter.Report(total == 0 ? 100 : 100.0 * (offset + bytes) / total, force: true);
                }
            }
            finally
            {
                buffer.Return(clear: false);
            }
            meter.Report(100, force: true);
        }

        /// <summary>Writes the non-zero clusters of <paramref name="data"/>, each run of them as one compressed request.</summary>
        private async Task WriteClustersAsync(Memory<byte> data, long destination, int clusterSize)
        {
            int pos = 0;
            while (pos < data.Length)
            {
                int run = pos;
                bool zero = IsZero(data, run, clusterSize);
                while (run < data.Length && IsZero(data, run, clusterSize) == zero)
                    run = Math.Min(data.Length, run + clusterSize);
                long at = destination + pos;
                var slice = data[pos..run];
                if (!zero)
                    await Write(() => target.WriteAsync(at, slice, compress ? Graph.RequestFlags.Compressed : Graph.RequestFlags.None), at);
                else if (!zeroInitialised)
                    await Write(() => target.WriteZeroesAsync(at, slice.Length, Graph.RequestFlags.MayUnmap), at);
                pos = run;
            }
        }

        private static bool IsZero(Memory<byte> data, int start, int clusterSize) =>
            data.Span.Slice(start, Math.Min(clusterSize, data.Length - start)).IndexOfAnyExcept((byte)0) < 0;

        /// <summary>The pieces of the concatenated sources that <c>[offset, offset + bytes)</c> covers.</summary>
        private static IEnumerable<SourceRange> Ranges(IReadOnlyList<(BlockNode Node, long Length)> sources, long offset, int bytes)
        {
            long start = 0;
            foreach (var (node, length) in sources)
            {
                long end = start + length;
                if (offset < end && offset + bytes > start)
                {
                    long from = Math.Max(offset, start);
                    long to = Math.Min(offset + bytes, end);
                    yield return new SourceRange(node, from - start, (int)(to - from));
                }
                start = end;
            }
        }

        private async Task CopyChunkAsync(BlockNode node, long offset, long destination, int bytes, bool zero, SemaphoreSlim gate, Task? writtenBefore)
        {
            var buffer = node.Graph.Buffers.Rent(bytes);
            try
            {
                var memory = buffer.Memory[..bytes];
                if (zero)
                {
                    memory.Span.Clear();
                }
                else
                {
                    try
                    {
                        await node.ReadAsync(offset, memory);
                    }
                    catch (BlockException e)
                    {
                        throw new ConvertException($"error while reading at byte {offset}: {e.Message}");
                    }
                }
                if (writtenBefore != null)
                    await writtenBefore;
                await WriteDataAsync(memory, destination);
                long done = Interlocked.Add(ref _allocatedDone, bytes);
                lock (meter)
                    meter.Report(_allocatedTotal == 0 ? 100 : 100.0 * done / _allocatedTotal, force: true);
            }
            finally
            {
                buffer.Return(clear: false);
                gate.Release();
            }
        }

        /// <summary>Writes a data chunk, leaving runs of at least <c>minSparse</c> zero bytes (whole sectors) unwritten.</summary>
        private async Task WriteDataAsync(Memory<byte> data, long destination)
        {
            var flags = compress ? Graph.RequestFlags.Compressed : Graph.RequestFlags.None;
            if (minSparse == 0)
            {
                await Write(() => target.WriteAsync(destination, data, flags), destination);
                return;
            }
            int pos = 0;
            while (pos < data.Length)
            {
                int run = RunEnd(data.Span, pos, out bool zero);
                int length = run - pos;
                long at = destination + pos;
                if (zero && length >= minSparse)
                {
                    if (!zeroInitialised)
                        await Write(() => target.WriteZeroesAsync(at, length, Graph.RequestFlags.MayUnmap), at);
                }
                else
                {
                    var slice = data.Slice(pos, length);
                    await Write(() => target.WriteAsync(at, slice, flags), at);
                }
                pos = run;
            }
        }

        /// <summary>Where the run of all-zero (or of not-all-zero) sectors starting at <paramref name="start"/> ends.</summary>
        /// <remarks>One span for the whole scan: <c>Memory.Span</c> over pooled native memory is a call per use.</remarks>
        private static int RunEnd(ReadOnlySpan<byte> data, int start, out bool zero)
        {
            zero = IsZeroSector(data, start);
            int run = start;
            while (run < data.Length && IsZeroSector(data, run) == zero)
                run = Math.Min(data.Length, run + Sector);
            return run;
        }

        private static bool IsZeroSector(ReadOnlySpan<byte> data, int start)
        {
            var sector = data.Slice(start, Math.Min(Sector, data.Length - start));
            // Data sectors almost always have a non-zero first word: answer them without the vectorised scan's setup.
            if (sector.Length >= sizeof(ulong) && System.Runtime.InteropServices.MemoryMarshal.Read<ulong>(sector) != 0)
                return false;
            return sector.IndexOfAnyExcept((byte)0) < 0;
        }

        private static async Task Write(Func<ValueTask> write, long offset)
        {
            try
            {
                await write();
            }
            catch (BlockException e)
            {
                throw new ConvertException($"error while writing at byte {offset}: {e.Message}");
            }
        }

        private static async IAsyncEnumerable<(long Offset, long Bytes, bool Zero)> Extents(BlockNode node, long length)
        {
            for (long offset = 0; offset < length;)
            {
                var (status, _) = await node.GetBlockStatusAboveAsync(offset, Math.Min(BufferSize, length - offset));
                long bytes = Math.Max(1, Math.Min(status.Bytes, length - offset));
                yield return (offset, bytes, status.Has(BlockStatusFlags.Zero));
                offset += bytes;
            }
        }
    }
}
