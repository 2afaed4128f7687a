using Block.TestSupport;

namespace Block.Formats.Tests.Vpc;

/// <summary>
/// Bad footers, dynamic headers and BATs: what QEMU refuses we refuse with its words; what QEMU lets through but
/// cannot be trusted (a dynamic header or BAT past the end of the file, blocks over the metadata) is a clear error
/// naming the field, never a crash, a huge allocation or a write outside the image.
/// </summary>
public class VpcMalformedImageTests
{
    private static string MakeImage(TempDirectory dir, string name = "m.vhd")
    {
        string image = dir.File(name);
        QemuImg.Create("vpc", image, "10M");
        Images.QemuIo(image, "vpc", "write -P 0x61 1M 2M");
        return image;
    }

    private static void Patch(string image, long offset, byte[] value)
    {
        using var f = File.OpenWrite(image);
        f.Position = offset;
        f.Write(value);
    }

    [Theory]
    [InlineData(0x40, "00000000", false)]           // footer checksum
    [InlineData(0x38, "ffff10fe", true)]            // a geometry of 136 GB, more than the BAT covers
    [InlineData(0x30, "000001fe00000200", true)]    // past 2040 GiB (by the maximum geometry below)
    [InlineData(0x0, "78", false)]                  // cookie at 0 and none at the end
    public void Footers_qemu_refuses_are_refused_with_its_message(int field, string hex, bool fixChecksum)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        VpcFiles.PatchFooter(image, 0, field, Convert.FromHexString(hex), fixChecksum);
        if (field == 0x30)
            VpcFiles.PatchFooter(image, 0, 0x38, Convert.FromHexString("ffff10ff"));
        if (field == 0)
            VpcFiles.PatchFooter(image, -1, 0, Convert.FromHexString(hex), fixChecksum);
        var q = QemuImg.Run("info", "-f", "vpc", image);
        Assert.Equal(1, q.ExitCode);
        Images.AssertSameOutput("info", "-f", "vpc", image);
    }

    [Theory]
    [InlineData(0x200, "78")]                   // dynamic header cookie
    [InlineData(0x220, "00300000")]             // block size not a power of two
    [InlineData(0x220, "00000100")]             // block size below a sector
    [InlineData(0x21c, "00000001")]             // a BAT too small for the disk
    [InlineData(0x21c, "7f000001")]             // a BAT too large for QEMU
    [InlineData(0x600, "00100000")]             // a block past the end of the file
    [InlineData(0x224, "00000000")]             // dynamic header checksum: QEMU does not check it
    public void Dynamic_headers_and_bats_qemu_refuses_are_refused_with_its_message(long offset, string hex)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        Patch(image, offset, Convert.FromHexString(hex));
        Images.AssertSameOutput("info", "-f", "vpc", image);
    }

    [Theory]
    [InlineData(0x10, "0000000010000000", "dynamic header offset 0x10000000 lies outside the file")]
    [InlineData(0x10, "0000000000000000", "dynamic header offset 0x0 lies outside the file")]
    public void Dynamic_header_offsets_past_the_file_are_refused_naming_the_field(int field, string hex, string message)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        VpcFiles.PatchFooter(image, 0, field, Convert.FromHexString(hex));
        AssertRefused(image, message);
    }

    [Theory]
    [InlineData(0x210, "0000000010000000", "BAT of 6 entries at offset 0x10000000 ends past the end of the file")]
    [InlineData(0x210, "ffffffffffffff00", "BAT of 6 entries at offset 0xffffffffffffff00 ends past the end of the file")]
    [InlineData(0x210, "0000000000000400", "BAT at offset 0x400 overlaps the dynamic header at 0x200")]
    [InlineData(0x21c, "00400000", "BAT of 4194304 entries at offset 0x600 ends past the end of the file")]
    [InlineData(0x600, "00000001", "BAT entry 0 places block 0 at offset 0x200, over the image's metadata")]
    [InlineData(0x604, "00000003", "BAT entry 1 places block 1 at offset 0x600, over the image's metadata")]
    public void Bats_that_would_overlap_metadata_or_lie_past_the_file_are_refused_naming_the_field(long offset, string hex, string message)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        Patch(image, offset, Convert.FromHexString(hex));
        AssertRefused(image, message);
    }

    [Fact]
    public void Files_without_a_footer_anywhere_are_not_vpc_images()
    {
        using var dir = new TempDirectory();
        string tiny = dir.File("tiny.vhd"), zeros = dir.File("zeros.vhd");
        File.WriteAllBytes(tiny, [1, 2, 3]);
        File.WriteAllBytes(zeros, new byte[4096]);
        Images.AssertSameOutput("info", "-f", "vpc", tiny);
        Images.AssertSameOutput("info", "-f", "vpc", zeros);
    }

    [Fact]
    public void A_fixed_image_whose_footer_states_more_than_the_file_reads_zeroes_past_it_and_refuses_writes_there()
    {
        using var dir = new TempDirectory();
        string image = dir.File("f.vhd");
        QemuImg.Create("vpc", image, "1M", "subformat=fixed");
        Images.QemuIo(image, "vpc", "write -P 0x42 0 1M");
        VpcFiles.PatchFooter(image, -1, 28, "win "u8.ToArray());
        VpcFiles.PatchFooter(image, -1, 48, VpcFiles.Be64(16 << 20));
        byte[] expected = Images.QemuRaw(dir, image, "vpc");
        var before = File.ReadAllBytes(image);
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "vpc");
        Assert.Equal(expected, BlockIo.Read(backend, 0, expected.Length));
        long footerAt = before.Length - 512;
        var write = Assert.ThrowsAny<BlockException>(() => BlockIo.Write(backend, footerAt - 512, new byte[1024]));
        Assert.Contains("would overwrite the footer", write.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(image));
    }

    private static void AssertRefused(string image, string message)
    {
        var before = File.ReadAllBytes(image);
        var r = BlkRunner.Run("info", "-f", "vpc", image);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(image));
    }
}
