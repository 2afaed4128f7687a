using Block.TestSupport;

namespace Block.Formats.Tests.Parallels;

/// <summary>
/// Bad headers and BATs: what QEMU refuses we refuse with its words; what it lets through but cannot be trusted (a BAT
/// past the end of the file, a data area over the BAT, a disk larger than the BAT maps, entries naming the header)
/// is a clear error or reads as QEMU reads it, never a crash, a huge allocation or a write outside the image.
/// </summary>
public class ParallelsMalformedImageTests
{
    private static string MakeImage(TempDirectory dir, string name = "m.prl")
    {
        string image = dir.File(name);
        QemuImg.Create("parallels", image, "1M", "cluster_size=64k");
        Images.QemuIo(image, "parallels", "write -P 0x61 64k 64k", "write -P 0x62 0 4k");
        return image;
    }

    [Theory]
    [InlineData(0, 0x4e, 1)]                // signature
    [InlineData(16, 3, 4)]                  // version
    [InlineData(28, 0, 4)]                  // zero sectors per track
    [InlineData(28, 0x7fffffff, 4)]         // cluster too big
    [InlineData(32, 0x7fffffff, 4)]         // catalog too large
    public void Headers_qemu_refuses_are_refused_with_its_message(long offset, ulong value, int bytes)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        ParallelsImages.Patch(image, offset, value, bytes);
        var q = QemuImg.Run("info", "-f", "parallels", image);
        Assert.Equal(1, q.ExitCode);
        Images.AssertSameOutput("info", "-f", "parallels", image);
    }

    [Theory]
    [InlineData(32, 0x1fff_ffffu, "BAT of 536870911 entries ends past the end of the file")]
    [InlineData(48, 0x10u, "data offset of 16 sectors lies inside the BAT")]
    [InlineData(48, 0x100000u, "data offset of 1048576 sectors lies past the end of the file")]
    [InlineData(36, 0x0100_0000_0000_0000ul, "disk size of 72057594037927936 sectors is too large")]
    public void Headers_qemu_lets_through_but_cannot_be_trusted_are_refused_naming_the_field(long offset, ulong value, string message)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        if (offset == 48)
            ParallelsImages.Patch(image, 32, 2100, 4); // the BAT then ends past 16 sectors
        ParallelsImages.Patch(image, offset, value, offset == 36 ? 8 : 4);
        var b = BlkRunner.Run("info", "-f", "parallels", image);
        Assert.Equal(1, b.ExitCode);
        Assert.Contains(message, b.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_disk_larger_than_its_bat_maps_reads_as_zeroes_there_and_refuses_writes_there()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        ParallelsImages.Patch(image, 36, 1UL << 31, 8); // 1 TiB of disk over a BAT of 16 clusters of 64 KiB
        IoComparison.AssertSameReadOnly(image, "parallels", "read -P 0 100M 4k", "read -P 0x61 64k 64k");
        AssertWriteFails(image, 100 << 20, "lies past the 16 clusters its BAT maps");
        Assert.Equal(0u, ParallelsImages.InUse(image));
    }

    [Fact]
    public void Entries_past_the_file_read_as_zeroes_and_entries_on_the_bat_are_never_written_through()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        long length = new FileInfo(image).Length;
        ParallelsImages.SetBatEntry(image, 5, 0xffff_fff0); // a cluster 256 TiB into the file
        ParallelsImages.SetBatEntry(image, 6, 0);            // never written
        IoComparison.AssertSameReadOnly(image, "parallels", "read -P 0 320k 64k");
        AssertWriteFails(image, 320 << 10, "BAT entry 5 names host offset 0xfffffff00000,");
        Assert.Equal(length, new FileInfo(image).Length);

        // An entry naming the header's own cluster: readable, as in QEMU, but no write lands on the header or the BAT.
        string onBat = MakeImage(dir, "b.prl");
        ParallelsImages.SetBatEntry(onBat, 10, 0);
        // In the old signature's sector units, entry 1 is byte 512: inside the header's cluster, before the data offset.
        ParallelsImages.ToOldSignature(onBat);
        ParallelsImages.Patch(onBat, 48, 128, 4);
        ParallelsImages.SetBatEntry(onBat, 10, 1);
        var before = File.ReadAllBytes(onBat);
        IoComparison.AssertSameReadOnly(onBat, "parallels", "read 640k 64k");
        AssertWriteFails(onBat, 640 << 10, "BAT entry 10 names host offset 0x200, outside the data area");
        Assert.Equal(before, File.ReadAllBytes(onBat));
    }

    private static void AssertWriteFails(string image, long offset, string message)
    {
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "parallels");
        var e = Assert.ThrowsAny<BlockException>(() => BlockIo.Write(backend, offset, Patterns.Fill(4096, 1)));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Random_corruption_of_header_and_bat_never_crashes_hangs_or_writes_outside_the_image()
    {
        using var dir = new TempDirectory();
        string pristine = MakeImage(dir);
        var bytes = File.ReadAllBytes(pristine);
        var random = new Random(16);
        for (int i = 0; i < 60; i++)
        {
            var copy = (byte[])bytes.Clone();
            for (int k = 0; k < 1 + random.Next(4); k++)
            {
                int at = random.Next(3) == 0 ? random.Next(64) : random.Next(64, 64 + 64);
                copy[at] = (byte)random.Next(256);
            }
            string image = dir.File($"f{i}.prl");
            File.WriteAllBytes(image, copy);
            long length = copy.Length;
            var r = BlkRunner.Run("io", "-f", "parallels", "-c", "read 0 1M", "-c", "write -P 0x33 100k 8k", "-c", "read -P 0x33 100k 8k", image);
            Assert.True(r.ExitCode is 0 or 1, r.Stdout + r.Stderr);
            Assert.True(new FileInfo(image).Length <= length + (1 << 20), "the image grew beyond one allocation");
            BlkRunner.Run("check", "-f", "parallels", image);
            File.Delete(image);
        }
    }
}
