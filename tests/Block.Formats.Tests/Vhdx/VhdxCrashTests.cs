using Block.Drivers;
using Block.TestSupport;

namespace Block.Formats.Tests.Vhdx;

/// <summary>
/// Crash safety of vhdx writes, whose BAT updates go through the log: after every prefix of the writes an allocating
/// workload sends to the file, a read/write open (ours, and qemu-img's <c>check -r all</c>) replays what the log holds,
/// the image then checks clean with our check and with <c>qemu-img check</c>, both tools read the same content, and
/// that content is the guest's before or after the write in flight.
/// </summary>
public class VhdxCrashTests
{
    private const int Size = 12 << 20;

    [Theory]
    [InlineData("block_size=1M", 1)]
    [InlineData("block_size=1M,block_state_zero=off", 2)]
    [InlineData("block_size=2M,log_size=1M", 3)]
    public async Task Every_prefix_of_the_writes_of_an_allocating_workload_replays_and_checks_clean(string options, int seed)
    {
        using var dir = new TempDirectory();
        string image = dir.File("c.vhdx");
        QemuImg.Create("vhdx", image, Size.ToString(System.Globalization.CultureInfo.InvariantCulture), options);
        var writes = CrashPrefixes.RandomWrites(seed, 6, Size, 1_500_000).ToList();
        var crashes = CrashPrefixes.Record(image, file => new BlockdevOptionsGenericFormat("vhdx") { File = file }, new byte[Size], writes);
        Assert.True(crashes.Count > 6 * 5, $"only {crashes.Count} writes reached the file");

        string ours = dir.File("ours.vhdx"), theirs = dir.File("theirs.vhdx");
        foreach (var crash in crashes.All())
        {
            File.WriteAllBytes(ours, crash.Image);
            File.WriteAllBytes(theirs, crash.Image);
            byte[] content;
            using (var graph = Images.Graph())
            {
                var backend = Images.Open(graph, ours, "vhdx");
                content = BlockIo.Read(backend, 0, Size);
                var check = await backend.Root!.Impl.CheckAsync(CheckRepair.None);
                Assert.True(check.Corruptions is null or 0 && check.CheckErrors == 0, $"prefix {crash.Count}: our check finds {check}");
            }
            crash.AssertReadsAsBeforeOrAfter(content, "blk");
            var q = QemuImg.Check(ours, "vhdx");
            Assert.True(q.ExitCode == 0, $"prefix {crash.Count} replayed by blk: qemu-img check exits {q.ExitCode}: {q.Stdout}{q.Stderr}");

            q = QemuImg.Run("check", "-r", "all", "-f", "vhdx", theirs);
            Assert.True(q.ExitCode == 0, $"prefix {crash.Count}: qemu-img check -r all exits {q.ExitCode}: {q.Stdout}{q.Stderr}");
            Assert.True(content.AsSpan().SequenceEqual(Images.QemuRaw(dir, theirs, "vhdx")), $"prefix {crash.Count}: qemu reads other bytes than blk");
        }
    }
}
