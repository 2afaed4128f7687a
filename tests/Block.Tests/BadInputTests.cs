using Block.Drivers.File;
using Block.Drivers.Raw;
using Block.Graph;
using Block.TestSupport;

namespace Block.Tests;

/// <summary>Bad requests and options get clear errors, and nothing is written.</summary>
public class BadInputTests
{
    [Theory]
    [InlineData(1 << 20, 1)]
    [InlineData((1 << 20) - 1, 2)]
    [InlineData(-1, 1)]
    [InlineData(2 << 20, 0)]
    public async Task Requests_outside_the_device_fail_with_EIO_and_count_as_invalid(long offset, int length)
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path));
        var read = await Assert.ThrowsAsync<BlockException>(async () => await backend.ReadAsync(offset, new byte[length]));
        Assert.Equal(Errno.EIO, read.Errno);
        var write = await Assert.ThrowsAsync<BlockException>(async () => await backend.WriteAsync(offset, Patterns.Fill(length, 1)));
        Assert.Equal(Errno.EIO, write.Errno);
        Assert.Equal(1 << 20, new FileInfo(path).Length);
        var stats = backend.GetStats().Stats;
        Assert.Equal(1, stats.InvalidRdOperations);
        Assert.Equal(1, stats.InvalidWrOperations);
        Assert.Equal(0, stats.WrOperations);
        Assert.NotNull(stats.IdleTimeNs);
    }

    [Fact]
    public async Task A_read_only_node_refuses_writes_zeroes_discards_and_resizes_and_keeps_its_bytes()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        File.WriteAllBytes(path, Patterns.Fill(65536, 0x77));
        await using var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(TestImages.RawOverFile(path, readOnly: true) with { NodeName = "ro" });
        Assert.Equal(Errno.EPERM, (await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(0, new byte[512]))).Errno);
        Assert.Equal(Errno.EPERM, (await Assert.ThrowsAsync<BlockException>(async () => await node.WriteZeroesAsync(0, 512))).Errno);
        Assert.Equal(Errno.EPERM, (await Assert.ThrowsAsync<BlockException>(async () => await node.DiscardAsync(0, 512))).Errno);
        await Assert.ThrowsAsync<BlockException>(async () => await node.TruncateAsync(1000));
        Assert.Equal(Patterns.Fill(65536, 0x77), File.ReadAllBytes(path));

        var e = Assert.Throws<BlockException>(() => graph.CreateBackend(node, new BlockBackendOptions { Permissions = BlockPermissions.ConsistentRead | BlockPermissions.Write }));
        Assert.Equal("Block node is read-only", e.Message);
    }

    [Fact]
    public async Task A_missing_file_is_an_error_naming_it()
    {
        await using var graph = new BlockGraph();
        var e = await Assert.ThrowsAsync<BlockException>(async () =>
            await graph.OpenBackendAsync(new BlockdevOptionsRaw { File = new BlockdevOptionsFile { Filename = "/nonexistent/x.img" } }));
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Equal("Could not open '/nonexistent/x.img': No such file or directory", e.Message);
        Assert.Empty(graph.Nodes);
    }

    [Fact]
    public async Task A_directory_is_not_a_regular_file()
    {
        using var dir = new TempDirectory();
        await using var graph = new BlockGraph();
        var e = await Assert.ThrowsAsync<BlockException>(async () =>
            await graph.OpenBackendAsync(new BlockdevOptionsFile { Filename = dir.Path, ReadOnly = true }));
        Assert.Equal($"'file' driver requires '{dir.Path}' to be a regular file", e.Message);
    }

    [Fact]
    public async Task Unknown_options_in_a_json_filename_are_named_and_open_nothing()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 4096);
        await using var graph = new BlockGraph();
        var e = await Assert.ThrowsAsync<BlockOptionsException>(async () =>
            await graph.OpenImageAsync("json:{\"driver\": \"raw\", \"file\": {\"driver\": \"file\", \"filename\": \"" + path + "\", \"colour\": \"blue\"}}"));
        Assert.Equal("Parameter 'file.colour' is unexpected", e.Message);
        Assert.Empty(graph.Nodes);
    }

    [Fact]
    public async Task Node_names_must_be_valid_and_unique()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 4096);
        await using var graph = new BlockGraph();
        await graph.AddNodeAsync(new BlockdevOptionsFile { Filename = path, NodeName = "disk0", ReadOnly = true });
        var dup = await Assert.ThrowsAsync<BlockException>(async () => await graph.AddNodeAsync(new BlockdevOptionsFile { Filename = path, NodeName = "disk0", ReadOnly = true }));
        Assert.Equal("Duplicate nodes with node-name='disk0'", dup.Message);
        await Assert.ThrowsAsync<BlockOptionsException>(async () => await graph.AddNodeAsync(new BlockdevOptionsFile { Filename = path }));
    }

    [Fact]
    public async Task Raw_windows_bound_requests_and_refuse_impossible_windows()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        File.WriteAllBytes(path, Patterns.Random(65536, 9));
        await using var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(new BlockdevOptionsRaw { NodeName = "w", Offset = 4096, Size = 8192, File = new BlockdevOptionsFile { Filename = path } });
        Assert.Equal(8192, node.Length);
        var buffer = new byte[8192];
        await node.ReadAsync(0, buffer);
        Assert.Equal(File.ReadAllBytes(path)[4096..12288], buffer);
        Assert.Equal(Errno.ENOSPC, (await Assert.ThrowsAsync<BlockException>(async () => await node.WriteAsync(8192, new byte[512]))).Errno);
        await Assert.ThrowsAsync<BlockOptionsException>(async () =>
            await graph.AddNodeAsync(new BlockdevOptionsRaw { NodeName = "w2", Offset = 60000, Size = 8192, File = new BlockdevOptionsFile { Filename = path } }));
    }

    [Fact]
    public async Task Aio_native_opens_with_the_io_uring_engine()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 4096);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsFile { Filename = path, Aio = Qapi.BlockdevAioOptions.Native });
        await backend.WriteAsync(0, Patterns.Fill(4096, 7));
        var back = new byte[4096];
        await backend.ReadAsync(0, back);
        Assert.Equal(Patterns.Fill(4096, 7), back);
        Assert.Equal("io_uring", graph.GetEngine(Qapi.BlockdevAioOptions.Native).Name);
    }
}
