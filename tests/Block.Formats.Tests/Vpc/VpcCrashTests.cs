using Block.TestSupport;

namespace Block.Formats.Tests.Vpc;

/// <summary>
/// Crash safety of dynamic vhd allocation (the block's data and bitmap, the footer at the new end, then the BAT entry,
/// with no flush in between as in QEMU): after every prefix of the writes an allocating workload sends to the file, the
/// image opens in blk and in qemu, both read the same content, that content is the guest's before or after the write
/// in flight, and a further allocating write by qemu-io (which reuses any block a crash leaked) leaves it consistent.
/// qemu-img has no check for vpc, so these reads and writes are the check.
/// </summary>
public class VpcCrashTests
{
    private const int Size = 12 << 20;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Every_prefix_of_the_writes_of_an_allocating_workload_opens_and_reads_as_before_or_after(int seed)
    {
        using var dir = new TempDirectory();
        string image = dir.File("c.vhd");
        QemuImg.Create("vpc", image, "12M", "force_size=on");
        var writes = CrashPrefixes.RandomWrites(seed, 8, Size - (2 << 20), 1_500_000).ToList();
        var crashes = CrashPrefixes.Record(image, file => new Block.Formats.Vpc.BlockdevOptionsVpc { File = file }, new byte[Size], writes);
        Assert.True(crashes.Count > 8 * 2, $"only {crashes.Count} writes reached the file");

        string crashed = dir.File("crashed.vhd");
        var extra = Patterns.Fill(4096, 0x7e);
        foreach (var crash in crashes.All())
        {
            File.WriteAllBytes(crashed, crash.Image);
            byte[] content;
            using (var graph = Images.Graph())
                content = BlockIo.Read(Images.Open(graph, crashed, "vpc", readOnly: true), 0, Size);
            crash.AssertReadsAsBeforeOrAfter(content, "blk");
            Assert.True(content.AsSpan().SequenceEqual(Images.QemuRaw(dir, crashed, "vpc")), $"prefix {crash.Count}: qemu reads other bytes than blk");

            // The last 2 MiB block is never written by the workload: qemu allocates it wherever the crash left the end.
            Images.QemuIo(crashed, "vpc", $"write -P 0x7e {Size - 4096} 4k");
            extra.CopyTo(content, Size - 4096);
            using (var graph = Images.Graph())
                Assert.True(content.AsSpan().SequenceEqual(BlockIo.Read(Images.Open(graph, crashed, "vpc", readOnly: true), 0, Size)), $"prefix {crash.Count}: a write after the crash changed other data");
        }
    }

    [Fact]
    public void Bytes_past_the_end_the_bat_knows_never_show_in_a_block_blk_allocates()
    {
        using var dir = new TempDirectory();
        string image = dir.File("s.vhd");
        QemuImg.Create("vpc", image, "12M", "force_size=on");
        using (var f = new FileStream(image, FileMode.Append))
            f.Write(Patterns.Fill(3 << 20, 0xab));
        Images.BlkIo(image, "vpc", "write -P 0x11 4096 4096");
        var expected = new byte[Size];
        Patterns.Fill(4096, 0x11).CopyTo(expected, 4096);
        Assert.Equal(expected, Images.QemuRaw(dir, image, "vpc"));
    }
}
