using System.Diagnostics;
using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Iscsi.Tests;

/// <summary>Targets that die, refuse or never existed: clear errors, bounded by the timeout, never a hang.</summary>
public sealed class IscsiFailureTests
{
    [Fact]
    public async Task Killing_the_target_mid_write_fails_the_writes_within_the_timeout()
    {
        using var target = new TgtTarget();
        var graph = IscsiGraphs.NewGraph();
        await using var _ = graph;
        var backend = IscsiGraphs.Open(graph, target, extra: new JsonObject { ["timeout"] = 3 });
        var data = Patterns.Random(1 << 20, 9);
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (long i = 0; ; i++)
            {
                var batch = Enumerable.Range(0, 8).Select(k => backend.WriteAsync(((i * 8 + k) % 60) << 20, data).AsTask());
                await Task.WhenAll(batch);
            }
        });
        await Task.Delay(500);
        Assert.False(writer.IsCompleted, writer.Exception?.ToString());
        var clock = Stopwatch.StartNew();
        target.Kill();
        var error = await Assert.ThrowsAnyAsync<BlockException>(() => writer.WaitAsync(TimeSpan.FromSeconds(30)));
        clock.Stop();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3 + 3), $"the writes failed after {clock.Elapsed}");
        Assert.Contains(error.Errno, new[] { Errno.ETIMEDOUT, Errno.EIO });
        Assert.Contains("iSCSI", error.Message);

        // The node stays failed, quickly: later requests do not wait for the timeout again.
        var again = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<BlockException>(() => backend.ReadAsync(0, new byte[4096]).AsTask());
        Assert.True(again.Elapsed < TimeSpan.FromSeconds(1), $"a read after the failure took {again.Elapsed}");
    }

    [Fact]
    public async Task Killing_the_target_under_blk_convert_ends_it_with_an_error()
    {
        using var target = new TgtTarget(size: 512L << 20);
        using var dir = new TempDirectory();
        string source = dir.File("source.raw");
        var chunk = Enumerable.Repeat((byte)0x5a, 1 << 20).ToArray();
        using (var file = File.Create(source))
        {
            for (int i = 0; i < 480; i++)
                file.Write(chunk);
        }
        var blk = Task.Run(() => BlkRunner.Run("convert", "-n", "-f", "raw", "-O", "raw", "--target-image-opts", source,
            target.ImageOpts("raw", ",file.timeout=2")));
        await Task.Delay(300);
        Assert.False(blk.IsCompleted, "blk convert finished before the target could be killed");
        var clock = Stopwatch.StartNew();
        target.Kill();
        var result = await blk.WaitAsync(TimeSpan.FromSeconds(30));
        clock.Stop();
        Assert.NotEqual(0, result.ExitCode);
        Assert.Matches("error while writing at byte [0-9]+: (Connection timed out|Input/output error)", result.Stderr);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2 + 4), $"blk convert failed after {clock.Elapsed}");
    }

    [Fact]
    public void A_portal_where_nothing_listens_is_a_clear_error()
    {
        var ours = BlkRunner.Run("info", "iscsi://127.0.0.1:1/iqn.2026-12.org.example:none/0");
        Assert.NotEqual(0, ours.ExitCode);
        Assert.Contains("iSCSI: Failed to connect to LUN", ours.Stderr);
    }

    [Fact]
    public void An_unknown_target_is_a_clear_error()
    {
        using var target = new TgtTarget();
        var ours = BlkRunner.Run("info", $"iscsi://{target.Portal}/iqn.2026-12.org.example:nothing/1");
        Assert.NotEqual(0, ours.ExitCode);
        Assert.Contains("iSCSI: Failed to connect to LUN", ours.Stderr);
    }

    [Fact]
    public void Iser_is_refused_with_a_clear_error()
    {
        var ours = BlkRunner.Run("info", "iser://127.0.0.1/iqn.2026-12.org.example:disk/1");
        Assert.NotEqual(0, ours.ExitCode);
        Assert.Contains("iser transport is not supported", ours.Stderr);
    }

    [Fact]
    public void Chap_logs_in_with_the_right_password_from_a_secret_and_not_with_a_wrong_one()
    {
        using var target = new TgtTarget(chapUser: "alice", chapPassword: "secretsecret1");
        string opts = target.ImageOpts("raw", ",file.user=alice,file.password-secret=pw");
        var good = BlkRunner.Run("info", "--object", "secret,id=pw,data=secretsecret1", "--image-opts", opts);
        Assert.True(good.ExitCode == 0, good.Stderr);
        Assert.Contains("virtual size: 64 MiB", good.Stdout);
        var bad = BlkRunner.Run("info", "--object", "secret,id=pw,data=wrongwrong12", "--image-opts", opts);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("iSCSI: Failed to connect to LUN", bad.Stderr);
        var url = BlkRunner.Run("info", $"iscsi://alice%secretsecret1@{target.Portal}/{TgtTarget.Iqn}/1");
        Assert.True(url.ExitCode == 0, url.Stderr);
    }
}
