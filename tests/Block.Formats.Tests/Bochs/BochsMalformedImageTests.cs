using System.Buffers.Binary;
using Block.TestSupport;

namespace Block.Formats.Tests.Bochs;

/// <summary>
/// Bad bochs headers and catalogs: what QEMU refuses we refuse with its words; a catalog past the end of the file is a
/// clear error naming the field; entries pointing past the file, or at slots whose offset overflows, read as zeroes as
/// in QEMU, never a crash or a huge allocation.
/// </summary>
public class BochsMalformedImageTests
{
    private static string Patched(TempDirectory dir, int offset, uint value, BochsImageWriter? writer = null)
    {
        var bytes = (writer ?? BochsInteropTests.Sample()).ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(offset), value);
        string image = dir.File("m.bochs");
        File.WriteAllBytes(image, bytes);
        return image;
    }

    [Theory]
    [InlineData(0, 0x68636f43u)]          // magic
    [InlineData(32, 0x6f646e55u)]         // type: not Redolog
    [InlineData(48, 0x74616c46u)]         // subtype: not Growing
    [InlineData(64, 0x0003_0000u)]        // version
    [InlineData(72, (1u << 20) + 1)]      // catalog too large
    [InlineData(72, 0x4000_0000u)]        // catalog far too large
    [InlineData(72, 10u)]                 // catalog too small for the disk
    [InlineData(80, 0u)]                  // extent size zero
    [InlineData(80, 256u)]                // extent size below a sector
    [InlineData(80, 3072u)]               // extent size not a power of two
    [InlineData(80, 16u << 20)]           // extent size too large
    [InlineData(92, 0x10u)]               // disk size of 64 GiB: catalog too small
    public void Headers_qemu_refuses_are_refused_with_its_message(int offset, uint value)
    {
        using var dir = new TempDirectory();
        string image = Patched(dir, offset, value);
        Assert.Equal(1, QemuImg.Run("info", "-f", "bochs", image).ExitCode);
        Images.AssertSameOutput("info", "-f", "bochs", image);
        Images.AssertSameOutput("info", image);
    }

    [Theory]
    [InlineData(68, 0x7fff_ffffu, "catalog of 65 entries at offset 0x7fffffff (the header size field) ends past the end of the file")]
    [InlineData(72, 1u << 20, "catalog of 1048576 entries at offset 0x200 (the header size field) ends past the end of the file")]
    public void A_catalog_past_the_end_of_the_file_is_refused_naming_the_field(int offset, uint value, string message)
    {
        using var dir = new TempDirectory();
        string image = Patched(dir, offset, value);
        var r = BlkRunner.Run("info", "-f", "bochs", image);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(512 + 4, 1000u)]           // extent 1 in a slot past the end of the file
    [InlineData(512 + 4, 0xfffffffeu)]     // the last slot there is: its offset needs more than 64 bits
    [InlineData(76, 0u)]                   // bitmap size 0: QEMU's arithmetic wraps to 4 GiB of bitmap per slot
    [InlineData(76, 0xffffffffu)]          // the largest bitmap
    [InlineData(76, 1u)]                   // a bitmap too small for the extent: the rest of its sector counts
    public void Entries_and_bitmaps_pointing_past_the_file_read_as_qemu_reads_them(int offset, uint value)
    {
        using var dir = new TempDirectory();
        string image = Patched(dir, offset, value);
        string raw = dir.File("b.raw");
        BlkRunner.Run("convert", "-f", "bochs", "-O", "raw", image, raw).EnsureSuccess("blk convert");
        Assert.Equal(Images.QemuRaw(dir, image, "bochs"), File.ReadAllBytes(raw));
    }

    [Fact]
    public void A_file_shorter_than_its_catalog_is_refused_naming_the_field()
    {
        using var dir = new TempDirectory();
        string image = dir.File("short.bochs");
        File.WriteAllBytes(image, BochsInteropTests.Sample().ToArray()[..300]);
        var r = BlkRunner.Run("info", "-f", "bochs", image);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("catalog of 65 entries at offset 0x200 (the header size field) ends past the end of the file", r.Stderr, StringComparison.Ordinal);
    }
}
