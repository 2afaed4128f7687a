using Block.Graph;
using Block.Streams;
using Block.TestSupport;

namespace Block.Tests;

/// <summary>The <see cref="Stream"/> view behaves as a seekable fixed-size stream over the device.</summary>
public class StreamTests
{
    [Fact]
    public async Task Stream_reads_writes_and_seeks_at_any_position()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path, align: 4096));
        using var stream = new BlockStream(backend);
        Assert.True(stream.CanSeek && stream.CanRead && stream.CanWrite);
        Assert.Equal(1 << 20, stream.Length);
        stream.Position = 1001;
        stream.Write(Patterns.Fill(5000, 0x61));
        Assert.Equal(6001, stream.Position);
        stream.Seek(-5000, SeekOrigin.Current);
        var back = new byte[5000];
        Assert.Equal(5000, stream.Read(back));
        Assert.Equal(Patterns.Fill(5000, 0x61), back);
        stream.Seek(-10, SeekOrigin.End);
        Assert.Equal(10, stream.Read(new byte[100]));
        Assert.Equal(0, stream.Read(new byte[100]));
        stream.Flush();
        var file = File.ReadAllBytes(path);
        Assert.Equal(Patterns.Fill(5000, 0x61), file[1001..6001]);
    }

    [Fact]
    public async Task Stream_set_length_resizes_the_device()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path));
        using var stream = new BlockStream(backend);
        stream.SetLength(2 << 20);
        Assert.Equal(2 << 20, stream.Length);
        Assert.Equal(2 << 20, new FileInfo(path).Length);
    }

    [Fact]
    public async Task Stream_over_a_read_only_backend_cannot_write()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 4096);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync(path, new ImageOpenOptions { Format = "raw", ReadOnly = true });
        using var stream = new BlockStream(backend);
        Assert.False(stream.CanWrite);
        Assert.Throws<BlockException>(() => stream.Write(new byte[10]));
    }
}
