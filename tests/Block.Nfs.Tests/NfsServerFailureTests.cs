using System.Diagnostics;
using Block.Graph;
using Block.TestSupport;

namespace Block.Nfs.Tests;

/// <summary>
/// A server that dies mid-write: the node fails its requests with a clean error within the limit of our own
/// (<see cref="NfsDriverOptions.RequestTimeout"/>), never hangs, and fails every later request at once. QEMU 7.2
/// hangs here.
/// </summary>
public sealed class NfsServerFailureTests
{
    private static readonly TimeSpan s_limit = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Killing_the_server_mid_write_fails_the_writes_with_eio_within_the_limit()
    {
        using var server = new NfsServer();
        string name = NfsServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(name), "256M");
        await using var graph = server.NewGraph(s_limit);
        var backend = await graph.OpenImageAsync(server.Url(name), new ImageOpenOptions { Format = "raw" });

        // Eight writers, 1 MiB each, round and round the image until one fails.
        var data = Patterns.Random(1 << 20, 5);
        using var stop = new CancellationTokenSource();
        int written = 0;
        async Task Writer(int index)
        {
            for (long i = index; !stop.IsCancellationRequested; i += 8)
            {
                await backend.WriteAsync(i % 256 * (1 << 20), data);
                Interlocked.Increment(ref written);
            }
        }
        var writers = Enumerable.Range(0, 8).Select(i => Task.Run(() => Writer(i))).ToArray();
        var clock = Stopwatch.StartNew();
        while (Volatile.Read(ref written) < 16 && clock.Elapsed < TimeSpan.FromSeconds(60))
            await Task.Delay(20);
        Assert.True(written >= 16, "the writes never got going");

        server.KillGanesha();
        clock.Restart();
        var failure = await Assert.ThrowsAsync<BlockException>(() => Task.WhenAny(writers).Unwrap());
        var failedAfter = clock.Elapsed;
        stop.Cancel();
        Assert.Equal(Errno.EIO, failure.Errno);
        Assert.True(failedAfter < s_limit + TimeSpan.FromSeconds(10), $"the first write failed after {failedAfter}");
        foreach (var writer in writers)
        {
            var e = await Assert.ThrowsAsync<BlockException>(() => writer.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(Errno.EIO, e.Errno);
        }

        // Later requests fail at once with the same error, and closing does not hang either.
        clock.Restart();
        var later = await Assert.ThrowsAsync<BlockException>(() => backend.ReadAsync(0, new byte[4096]).AsTask());
        Assert.Equal(Errno.EIO, later.Errno);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"a read on the dead node took {clock.Elapsed}");
        await backend.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Opening_with_no_server_listening_fails_within_the_limit()
    {
        using var server = new NfsServer();
        string name = NfsServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(name), "1M");
        server.KillGanesha();
        await using var graph = server.NewGraph(s_limit);
        var clock = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<BlockException>(() => graph.OpenImageAsync(server.Url(name), new ImageOpenOptions { Format = "raw" }).AsTask());
        Assert.StartsWith("Failed to mount nfs share: ", e.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < s_limit + TimeSpan.FromSeconds(10), $"the open failed after {clock.Elapsed}");
    }
}
