using System.Diagnostics;
using Block.Drivers;
using Block.Graph;
using Block.TestSupport;

namespace Block.Rbd.Tests;

/// <summary>
/// A cluster that dies under a running writer: the writer gets a clean error within a bounded time and the image
/// closes, where QEMU 7.2 (librados' default timeouts of "for ever") hangs. Each test has a cluster of its own.
/// </summary>
public sealed class RbdFailureTests : IDisposable
{
    private readonly CephCluster _cluster = new();

    /// <summary>Writes 64 KiB requests, 16 in flight, until one fails; returns the failure and how long after <paramref name="kill"/> it came.</summary>
    private async Task<(Exception Error, TimeSpan AfterKill)> WriteUntilFailureAsync(Action kill)
    {
        string name = _cluster.Name(CephCluster.NewImageName(), ":rados_osd_op_timeout=5:rados_mon_op_timeout=5");
        QemuImg.Run("create", "-q", "-f", "raw", name, "64M").EnsureSuccess("qemu-img create");
        var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddRbd() });
        var backend = await graph.OpenImageAsync(name, new ImageOpenOptions { Format = "raw" });
        var killedAt = new TaskCompletionSource<Stopwatch>();
        var data = Patterns.Random(65536, 3);
        long written = 0;
        Exception? error = null;
        var workers = Enumerable.Range(0, 16).Select(async w =>
        {
            for (long i = w; error is null; i += 16)
            {
                try
                {
                    await backend.WriteAsync(i * 65536 % (64L << 20), data);
                    if (Interlocked.Increment(ref written) == 200)
                    {
                        kill();
                        killedAt.TrySetResult(Stopwatch.StartNew());
                    }
                }
                catch (BlockException e)
                {
                    error ??= e;
                }
            }
        }).ToArray();
        var all = Task.WhenAll(workers);
        Assert.True(await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(90))) == all, "writes hung after the kill");
        var clock = await killedAt.Task;
        var afterKill = clock.Elapsed;
        var close = Task.Run(async () =>
        {
            await backend.DisposeAsync();
            await graph.DisposeAsync();
        });
        Assert.True(await Task.WhenAny(close, Task.Delay(TimeSpan.FromSeconds(60))) == close, "closing the image hung");
        return (error!, afterKill);
    }

    [Fact]
    public async Task Killing_the_osd_mid_write_fails_the_writes_with_a_clean_error_within_the_timeout()
    {
        var (error, afterKill) = await WriteUntilFailureAsync(_cluster.KillOsd);
        var e = Assert.IsType<BlockException>(error, exactMatch: false);
        Assert.Contains("rbd write", e.Message);
        Assert.True(afterKill < TimeSpan.FromSeconds(30), $"the error came {afterKill} after the kill");
    }

    [Fact]
    public async Task Killing_the_monitor_and_osd_mid_write_fails_the_writes_with_a_clean_error_within_the_timeout()
    {
        var (error, afterKill) = await WriteUntilFailureAsync(() =>
        {
            _cluster.KillMon();
            _cluster.KillOsd();
        });
        Assert.IsType<BlockException>(error, exactMatch: false);
        Assert.True(afterKill < TimeSpan.FromSeconds(30), $"the error came {afterKill} after the kill");
    }

    [Fact]
    public void Opening_with_no_monitor_fails_within_the_mount_timeout()
    {
        string name = _cluster.Name(CephCluster.NewImageName());
        QemuImg.Run("create", "-q", "-f", "raw", name, "4M").EnsureSuccess("qemu-img create");
        _cluster.KillMon();
        var clock = Stopwatch.StartNew();
        var result = BlkRunner.Run("info", _cluster.Name("x", ":client_mount_timeout=5"));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("error connecting", result.Stderr);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
    }

    public void Dispose() => _cluster.Dispose();
}
