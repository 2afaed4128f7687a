using Block.Drivers.File;
using Block.Metrics;
using Block.Qcow2.Driver;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>The qcow2 metadata caches report their hits and misses on the <c>Block</c> meter, per node and cache.</summary>
public class CacheMetricsTests
{
    [Fact]
    public async Task A_first_read_misses_the_l2_cache_and_the_next_reads_of_the_slice_hit_it()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuImg.Create("qcow2", path, "16M");
        QemuIo.RunChecked(path, "qcow2", "write -P 1 0 128k");
        string node = "cache-" + Guid.NewGuid().ToString("N");
        using var recorder = new MetricsRecorder(node);
        await using var graph = Qcow2Images.NewGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsQcow2 { NodeName = node, File = new BlockdevOptionsFile { Filename = path } });
        var buffer = new byte[4096];
        await backend.ReadAsync(0, buffer);
        Assert.Equal(1, recorder.Sum(BlockMetrics.CacheMisses, "l2"));
        Assert.Equal(0, recorder.Sum(BlockMetrics.CacheHits, "l2"));
        await backend.ReadAsync(4096, buffer);
        await backend.ReadAsync(65536, buffer);
        Assert.Equal(1, recorder.Sum(BlockMetrics.CacheMisses, "l2"));
        Assert.Equal(2, recorder.Sum(BlockMetrics.CacheHits, "l2"));
    }
}
