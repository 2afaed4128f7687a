using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Tests.Jobs;

/// <summary>The length a mirror reports when a source read error under <c>stop</c> has paused it.</summary>
public sealed class MirrorErrorLengthTests
{
    [Fact]
    public async Task A_mirror_paused_by_a_read_error_reports_the_failed_run_as_still_to_copy()
    {
        // The job's running length reads the dirty count and then the bytes in flight; a copy that failed between the
        // two reads dropped out of both, and the paused job said len 0 where QEMU says 512 KiB (a flake of the mirror
        // oracle test in CI). Every read here fails, so each round gives that window sixteen chances; a paused job's
        // length is now settled once nothing is in flight.
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("src.raw"), Enumerable.Repeat((byte)0x5a, 1 << 20).ToArray());
        for (int round = 0; round < 200; round++)
        {
            File.WriteAllBytes(dir.File("dst.raw"), new byte[1 << 20]);
            await using var graph = new BlockGraph();
            var source = await graph.AddNodeAsync(graph.Parser.ParseJson($$"""
                {"driver": "raw", "node-name": "src",
                 "file": {"driver": "blkdebug",
                          "image": {"driver": "file", "filename": "{{dir.File("src.raw")}}"},
                          "inject-error": [{"event": "read_aio", "errno": 5, "once": false}]
                         }
                }
                """));
            graph.CreateBackend(source, new BlockBackendOptions { Name = "dev" });
            await graph.AddNodeAsync(graph.Parser.ParseJson($$"""
                {"driver": "file", "node-name": "dst", "filename": "{{dir.File("dst.raw")}}"}
                """));
            var paused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            graph.EventRaised += e => { if (e.Name == "BLOCK_JOB_ERROR") paused.TrySetResult(); };
            var job = await graph.BlockdevMirrorAsync("m", "dev", "dst", MirrorSyncMode.Full, granularity: 4096, onSourceError: BlockdevOnError.Stop);
            await paused.Task.WaitAsync(TimeSpan.FromSeconds(30));
            var info = job.GetInfo();
            for (int i = 0; info.Busy && i < 3000; i++)
            {
                await Task.Delay(10);
                info = job.GetInfo();
            }
            Assert.False(info.Busy);
            Assert.True(info.Paused);
            Assert.Equal((0L, 1L << 20), (info.Offset, info.Len));
            job.Cancel(force: true);
            await Task.WhenAny(job.Completion);
        }
    }
}
