using Block.Drivers.Blkdebug;
using Block.Drivers.File;
using Block.Drivers.Raw;
using Block.Graph;
using Block.Metrics;
using Block.Qcow2.Driver;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>The qcow2 metadata caches report their hits and misses on the <c>Block</c> meter, per node and cache.</summary>
public class CacheMetricsTests
{
    [Fact]
    public Task A_first_read_misses_the_l2_cache_and_the_next_reads_of_the_slice_hit_it() => FirstMissThenHitsAsync();

    /// <summary>
    /// With a blkdebug node open anywhere in the process (another test's, once), reads take the path that reports debug
    /// events; each read still looks its L2 slice up once. The fast path used to look it up before it found that out,
    /// so every read counted two hits, and this class's counts depended on what other test classes had open.
    /// </summary>
    [Fact]
    public async Task A_blkdebug_node_open_elsewhere_does_not_change_the_counts()
    {
        using var dir = new TempDirectory();
        string other = dir.File("other.raw");
        File.WriteAllBytes(other, new byte[65536]);
        await using var debugGraph = Qcow2Images.NewGraph();
        await debugGraph.OpenBackendAsync(new BlockdevOptionsRaw
        {
            File = new BlockdevOptionsBlkdebug { Image = new BlockdevOptionsFile { Filename = other } },
        });
        Assert.True(BlockNode.DebugEventsEnabled);
        await FirstMissThenHitsAsync();
    }

    private static async Task FirstMissThenHitsAsync()
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
