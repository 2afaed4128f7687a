using Block.Drivers.File;
using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Tests;

/// <summary>The file protocol: holes, zero ranges, preallocation, growth and the threads engine.</summary>
public class FileDriverTests
{
    [Theory]
    [InlineData(PreallocMode.Off, false)]
    [InlineData(PreallocMode.Falloc, true)]
    [InlineData(PreallocMode.Full, true)]
    public async Task Growing_with_preallocation_allocates_the_new_area(PreallocMode mode, bool allocates)
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsFile { Filename = path });
        long before = backend.Root!.AllocatedSize!.Value;
        await backend.TruncateAsync(3 << 20, mode);
        Assert.Equal(3 << 20, new FileInfo(path).Length);
        long after = backend.Root!.AllocatedSize!.Value;
        Assert.Equal(allocates, after - before >= 2 << 20);
    }

    [Fact]
    public async Task Shrinking_with_preallocation_is_refused()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsFile { Filename = path });
        var e = await Assert.ThrowsAsync<BlockException>(async () => await backend.TruncateAsync(4096, PreallocMode.Full));
        Assert.Equal(Errno.ENOTSUP, e.Errno);
        Assert.Equal(1 << 20, new FileInfo(path).Length);
    }

    [Fact]
    public async Task Discard_punches_holes_and_block_status_sees_them()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        using (var f = new FileStream(path, FileMode.Create))
        {
            f.Write(Patterns.Fill(1 << 20, 0x44));
            f.Flush(flushToDisk: true);
        }
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path));
        await backend.DiscardAsync(256 << 10, 256 << 10);
        var status = await backend.GetBlockStatusAsync(256 << 10, 256 << 10);
        Assert.True(status.Has(BlockStatusFlags.Zero));
        Assert.Equal(256 << 10, status.Bytes);
        Assert.Equal(QemuImg.MapJsonText(path), string.Join(",\n", await MapAsync(backend)) + "]\n");
    }

    private static async Task<List<string>> MapAsync(BlockBackend backend)
    {
        var list = new List<string>();
        for (long offset = 0; offset < backend.Length;)
        {
            var s = await backend.GetBlockStatusAsync(offset, backend.Length - offset);
            string zero = s.Has(BlockStatusFlags.Zero) ? "true" : "false", data = s.Has(BlockStatusFlags.Data) ? "true" : "false";
            list.Add($"{(list.Count == 0 ? "[" : "")}{{ \"start\": {offset}, \"length\": {s.Bytes}, \"depth\": 0, \"present\": true, \"zero\": {zero}, \"data\": {data}, \"offset\": {s.HostOffset}}}");
            offset += s.Bytes;
        }
        return list;
    }

    [Fact]
    public async Task Writes_past_the_end_grow_the_file_and_the_node()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 10000);
        await using var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(new BlockdevOptionsFile { Filename = path, NodeName = "f" });
        Assert.Equal(10240, node.Length);
        await node.WriteAsync(10000, Patterns.Fill(240, 1));
        Assert.Equal(10240, new FileInfo(path).Length);
        await node.WriteAsync(1 << 20, Patterns.Fill(4096, 2));
        Assert.Equal((1 << 20) + 4096, node.Length);
    }

    [Fact]
    public async Task The_threads_engine_keeps_many_direct_reads_in_flight_on_its_workers_not_on_the_callers_thread()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 16 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path, BlockdevAioOptions.Threads, direct: true));
        var tasks = Enumerable.Range(0, 256).Select(i => backend.ReadAsync(i * 65536L, new byte[65536]).AsTask()).ToArray();
        await Task.WhenAll(tasks);
        var engine = (Block.Io.ThreadsIoEngine)graph.GetEngine(BlockdevAioOptions.Threads);
        // O_DIRECT reads never try the page cache on the caller's thread: with RWF_NOWAIT a direct read still waits
        // for the disk, so the caller would block. They all go to the workers.
        Assert.InRange(engine.WorkerCount, 1, engine.MaxWorkers);
        Assert.Equal(256, backend.GetStats().Stats.RdOperations);
    }

    [Fact]
    public async Task A_read_of_cached_data_on_the_threads_engine_completes_on_the_callers_thread_without_a_worker()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        File.WriteAllBytes(path, Enumerable.Repeat((byte)0x5a, 65536).ToArray());
        using var engine = new Block.Io.ThreadsIoEngine();
        using var handle = File.OpenHandle(path);
        var buffer = new byte[4096];
        var read = engine.ReadAsync((int)handle.DangerousGetHandle(), new Block.Io.IoVector(buffer.AsMemory()), 4096);
        Assert.True(read.IsCompletedSuccessfully);
        Assert.Equal(4096, await read);
        Assert.All(buffer, b => Assert.Equal(0x5a, b));
        Assert.Equal(0, engine.WorkerCount);
    }

    [Theory]
    [InlineData(BlockdevAioOptions.Threads, false)]
    [InlineData(BlockdevAioOptions.IoUring, false)]
    [InlineData(BlockdevAioOptions.Inline, false)]
    [InlineData(BlockdevAioOptions.Threads, true)]
    public async Task Starting_write_out_on_each_engine_completes_and_changes_nothing_a_read_returns(BlockdevAioOptions aio, bool direct)
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 4 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path, aio, direct));
        await backend.WriteAsync(1 << 20, Patterns.Fill(2 << 20, 0x3c));
        // Through the raw node to its file, and a second time with nothing left dirty.
        await backend.Root!.StartWritebackAsync();
        await backend.Root!.StartWritebackAsync();
        await backend.WriteAsync(0, Patterns.Fill(4096, 0x11));
        await backend.FlushAsync();
        Assert.All(await File.ReadAllBytesAsync(path), (b, i) => Assert.Equal(i < 4096 ? 0x11 : i is >= 1 << 20 and < 3 << 20 ? 0x3c : 0, b));
        Assert.Equal(0, backend.Root!.InFlight);
    }

    [Fact]
    public async Task Starting_write_out_on_a_read_only_node_does_nothing()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path, readOnly: true));
        await backend.Root!.StartWritebackAsync();
        Assert.Equal(1 << 20, new FileInfo(path).Length);
    }
}
