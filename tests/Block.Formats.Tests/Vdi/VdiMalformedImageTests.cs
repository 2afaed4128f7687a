using System.Buffers.Binary;
using Block.TestSupport;

namespace Block.Formats.Tests.Vdi;

/// <summary>
/// Bad headers and block maps: what QEMU refuses we refuse with its words; what QEMU lets through but cannot be
/// trusted (a map past the end of the file, a map or data area over the header, an entry past the map) is a clear
/// error naming the field, never a crash, a huge allocation or a write outside the image. <c>check</c> reports broken
/// maps as qemu-img does.
/// </summary>
public class VdiMalformedImageTests
{
    private static string MakeImage(TempDirectory dir, string name = "m.vdi")
    {
        string image = dir.File(name);
        QemuImg.Create("vdi", image, "4M");
        Images.QemuIo(image, "vdi", "write -P 0x61 0 2M");
        return image;
    }

    private static void Patch32(string image, long offset, uint value)
    {
        using var f = File.OpenWrite(image);
        f.Position = offset;
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        f.Write(b);
    }

    [Theory]
    [InlineData(0x44, 0x00010002u)]   // version
    [InlineData(0x154, 0x201u)]       // unaligned block map
    [InlineData(0x158, 0x401u)]       // unaligned data
    [InlineData(0x168, 4096u)]        // sector size
    [InlineData(0x178, 4096u)]        // block size
    [InlineData(0x170, 5u << 20)]     // disk size larger than the map
    [InlineData(0x180, 0x40000000u)]  // too many blocks
    [InlineData(0x1a8, 1u)]           // link UUID
    [InlineData(0x1b8, 1u)]           // parent UUID
    public void Headers_qemu_refuses_are_refused_with_its_message(long offset, uint value)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        Patch32(image, offset, value);
        var q = QemuImg.Run("info", "-f", "vdi", image);
        Assert.Equal(1, q.ExitCode);
        Images.AssertSameOutput("info", "-f", "vdi", image);
    }

    [Theory]
    [InlineData(0x154, 0x10000000u, "block map of 4 blocks at offset 0x10000000 ends past the end of the file")]
    [InlineData(0x154, 0x0u, "block map offset 0x0 lies inside the header")]
    [InlineData(0x158, 0x200u, "data offset 0x200 overlaps the block map at 0x200")]
    [InlineData(0x158, 0x0u, "data offset 0x0 lies inside the header")]
    [InlineData(0x180, 0x1fffff00u, "block map of 536870656 blocks at offset 0x200 ends past the end of the file")]
    public void Maps_that_would_overlap_metadata_or_lie_past_the_file_are_refused_naming_the_field(long offset, uint value, string message)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        Patch32(image, offset, value);
        var before = File.ReadAllBytes(image);
        var r = BlkRunner.Run("info", "-f", "vdi", image);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(image));
    }

    [Fact]
    public void An_entry_past_the_map_fails_the_request_touching_it_and_nothing_else()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        Patch32(image, 0x200 + 4, 7);
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "vdi");
        Assert.Equal(Patterns.Fill(4096, 0x61), BlockIo.Read(backend, 0, 4096));
        var read = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 1 << 20, 512));
        Assert.Contains("block map entry 1 names data block 7", read.Message, StringComparison.Ordinal);
        long length = new FileInfo(image).Length;
        Assert.ThrowsAny<BlockException>(() => BlockIo.Write(backend, (1 << 20) + 512, new byte[512]));
        Assert.Equal(length, new FileInfo(image).Length);
    }

    [Theory]
    [InlineData(new uint[] { 0, 0, 7, 0xfffffffe }, 2u)]
    [InlineData(new uint[] { 1, 1, 0xffffffff, 0xffffffff }, 2u)]
    [InlineData(new uint[] { 2, 0, 2, 0xffffffff }, 3u)]
    [InlineData(new uint[] { 0, 0xffffffff, 0xffffffff, 0xffffffff }, 5u)]
    [InlineData(new uint[] { 0, 1, 2, 3 }, 2u)]
    public void Check_reports_broken_maps_as_qemu_img_does(uint[] entries, uint allocated)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        for (int i = 0; i < entries.Length; i++)
            Patch32(image, 0x200 + i * 4, entries[i]);
        Patch32(image, 0x184, allocated);
        Images.AssertSameOutput("check", "-f", "vdi", image);
        Images.AssertSameOutput("check", "--output=json", "-f", "vdi", image);
    }

    [Fact]
    public void A_file_too_short_for_a_header_is_probed_and_refused_as_qemu_img_does()
    {
        using var dir = new TempDirectory();
        string image = dir.File("short.vdi");
        var bytes = new byte[0x50];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x40), 0xbeda107f);
        File.WriteAllBytes(image, bytes);
        Images.AssertSameOutput("info", "-f", "vdi", image);
        Images.AssertSameOutput("info", image);
    }
}
