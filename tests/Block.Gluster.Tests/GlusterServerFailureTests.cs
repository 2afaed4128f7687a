using System.Diagnostics;
using Block.Graph;
using Block.TestSupport;

namespace Block.Gluster.Tests;

/// <summary>
/// A server that dies or hangs mid-write: the node fails its requests with a clean error within a bounded time, never
/// hangs, and closing it does not hang either. A killed server closes its sockets, and gfapi fails the requests at
/// once (QEMU 7.2 reports ENOMEDIUM there); a frozen one answers nothing, and our limit
/// (<see cref="GlusterDriverOptions.RequestTimeout"/>) fails them.
/// </summary>
public sealed class GlusterServerFailureTests
{
    private static readonly TimeSpan s_limit = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Killing_the_server_mid_write_fails_the_writes_with_eio_within_the_limit()
    {
        using var server = new GlusterServer();
        await WriteUntilFailure(server, server.KillServer);
    }

    [Fact]
    public async Task A_brick_that_stops_answering_mid_write_fails_the_writes_with_eio_at_our_limit()
    {
        using var server = new GlusterServer();
        await WriteUntilFailure(server, server.FreezeBrick);
    }

    private static async Task WriteUntilFailure(GlusterServer server, Action fault)
    {
        string name = GlusterServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(name), "256M");
        await using var graph = server.NewGraph(s_limit);
        var backend = await graph.OpenImageAsync(GlusterServer.Url(name), new ImageOpenOptions { Format = "raw" });

        // Eight writers, 1 MiB each, round and round the image, flushing now and then, until one fails.
        var data = Patterns.Random(1 << 20, 5);
        using var stop = new CancellationTokenSource();
        int written = 0;
        async Task Writer(int index)
        {
            for (long i = index; !stop.IsCancellationRequested; i += 8)
            {
                await backend.WriteAsync(i % 256 * (1 << 20), data);
                if (i % 32 == index)
                    await backend.FlushAsync();
                Interlocked.Increment(ref written);
            }
        }
        var writers = Enumerable.Range(0, 8).Select(i => Task.Run(() => Writer(i))).ToArray();
        var clock = Stopwatch.StartNew();
        while (Volatile.Read(ref written) < 16 && clock.Elapsed < TimeSpan.FromSeconds(60))
            await Task.Delay(20);
        Assert.True(written >= 16, "the writes never got going");

        fault();
        clock.Restart();
        var failure = await Assert.ThrowsAsync<BlockException>(() => Task.WhenAny(writers).Unwrap().WaitAsync(TimeSpan.FromSeconds(60)));
        var failedAfter = clock.Elapsed;
        stop.Cancel();
        Assert.Equal(Errno.EIO, failure.Errno);
        Assert.True(failedAfter < s_limit + TimeSpan.FromSeconds(5), $"the first write failed after {failedAfter}");
        // Every other writer ends within the limit: with EIO, or cleanly if the write it had in hand when the first
        // failure stopped the loop was acknowledged before the fault (the loop ends on the stop, not on an error).
        foreach (var writer in writers)
        {
            try
            {
                await writer.WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (BlockException e)
            {
                Assert.Equal(Errno.EIO, e.Errno);
            }
        }

        // Later requests fail too, within the limit, and closing does not hang either.
        clock.Restart();
        var later = await Assert.ThrowsAsync<BlockException>(() => backend.ReadAsync(0, new byte[4096]).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(Errno.EIO, later.Errno);
        Assert.True(clock.Elapsed < s_limit + TimeSpan.FromSeconds(2), $"a read on the dead node took {clock.Elapsed}");
        await backend.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Opening_with_no_server_listening_fails_within_the_limit_with_qemus_message()
    {
        using var server = new GlusterServer();
        string name = GlusterServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(name), "1M");
        server.KillServer();
        await using var graph = server.NewGraph(s_limit);
        var clock = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<BlockException>(() => graph.OpenImageAsync(GlusterServer.Url(name), new ImageOpenOptions { Format = "raw" }).AsTask());
        Assert.StartsWith($"Gluster connection for volume {GlusterServer.Volume}, path {name} failed to connect\nhint: failed on host 127.0.0.2 and port 24007 ", e.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < s_limit + TimeSpan.FromSeconds(5), $"the open failed after {clock.Elapsed}");
    }
}
