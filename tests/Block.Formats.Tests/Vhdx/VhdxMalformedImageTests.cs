using System.Buffers.Binary;
using Block.TestSupport;

namespace Block.Formats.Tests.Vhdx;

/// <summary>
/// Bad headers, region tables, metadata and BATs: a clear error naming the image and the field, never a crash, a huge
/// allocation, or a payload block over the image's metadata.
/// </summary>
public class VhdxMalformedImageTests
{
    private static string MakeImage(TempDirectory dir)
    {
        string image = dir.File("m.vhdx");
        QemuImg.Create("vhdx", image, "20M");
        Images.QemuIo(image, "vhdx", "write -P 0x61 0 1M");
        return image;
    }

    private static byte[] U32(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); return b; }

    private static byte[] U64(ulong v) { var b = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); return b; }

    private static void AssertOpenFails(string image, string message)
    {
        var r = BlkRunner.Run("info", "-f", "vhdx", image);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Contains("m.vhdx", r.Stderr);
    }

    [Fact]
    public void A_region_table_with_a_bad_checksum_is_refused()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        VhdxFixtures.Patch(image, 0x30000 + 8, U32(3));
        AssertOpenFails(image, "region table 1 at 192 KiB has a bad signature or checksum");
    }

    [Theory]
    [InlineData(0x30000 + 16 + 16, 0x7000_0000_0000UL, "ends past the end of the file")]          // BAT offset
    [InlineData(0x30000 + 16 + 16, 0xffff_ffff_fff0_0000UL, "region 2dc27766-f623-4200-9d64-115e9bfd4a08 at 0x7fffffffffffffff")] // BAT offset that overflows
    [InlineData(0x30000 + 16 + 16, 0x10_0000UL, "overlaps another region or the log")]             // BAT over the log
    [InlineData(0x30000 + 16 + 16, 0x1234UL, "is not aligned to 1 MiB")]                           // unaligned BAT
    public void Regions_past_the_file_overlapping_or_unaligned_are_refused_naming_the_field(int at, ulong value, string message)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        VhdxFixtures.Patch(image, at, U64(value));
        VhdxFixtures.FixRegionTableChecksum(image, 0x30000);
        AssertOpenFails(image, message);
    }

    [Theory]
    [InlineData(0x310008, 0xffff_ffff_ffff_fe00UL, "virtual disk size 18446744073709551104 is over 64 TiB")]
    [InlineData(0x310008, 64UL << 41, "is over 64 TiB")]
    [InlineData(0x310000, 3UL << 20, "block size 3145728 is not a power of two")]
    [InlineData(0x310000, 1UL << 31, "block size 2147483648 is not a power of two")]
    [InlineData(0x310020, 1000UL, "logical sector size 1000 is not 512 or 4096")]
    public void Metadata_out_of_range_is_refused_naming_the_field(int at, ulong value, string message)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        VhdxFixtures.Patch(image, at, at == 0x310008 ? U64(value) : U32((uint)value));
        AssertOpenFails(image, message);
    }

    [Fact]
    public void A_virtual_size_larger_than_the_bat_region_is_refused()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        VhdxFixtures.Patch(image, 0x310008, U64(60UL << 40));
        AssertOpenFails(image, "BAT region of 1048576 bytes is too small");
    }

    [Fact]
    public void A_bat_entry_over_the_metadata_is_refused()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        VhdxFixtures.Patch(image, 0x200000, U64(0x200006));
        AssertOpenFails(image, "BAT entry 0 puts payload block 0 at 0x200000, over the image's metadata");
    }

    [Fact]
    public void Headers_with_bad_checksums_are_refused()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        VhdxFixtures.Patch(image, 0x10000 + 100, U32(1));
        VhdxFixtures.Patch(image, 0x20000 + 100, U32(1));
        AssertOpenFails(image, "no valid header");
    }

    [Fact]
    public void A_block_past_the_end_of_the_file_is_reported_by_check_as_qemu_img_reports_it()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        using (var f = File.OpenWrite(image))
            f.SetLength(12 << 20);
        Images.AssertSameOutput("check", "-f", "vhdx", image);
        using (var f = File.OpenWrite(image))
            f.SetLength(8 << 20);
        Images.AssertSameOutput("check", "-f", "vhdx", image);
    }

    [Fact]
    public void Random_corruption_of_the_metadata_never_crashes_or_hangs()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        var pristine = File.ReadAllBytes(image);
        var random = new Random(16);
        int[] areas = [0, 0x10000, 0x20000, 0x30000, 0x100000, 0x200000, 0x300000, 0x310000];
        for (int round = 0; round < 60; round++)
        {
            var bytes = (byte[])pristine.Clone();
            for (int i = 0; i < 8; i++)
                bytes[areas[random.Next(areas.Length)] + random.Next(128)] = (byte)random.Next(256);
            string corrupt = dir.File("c.vhdx");
            File.WriteAllBytes(corrupt, bytes);
            using var graph = Images.Graph();
            try
            {
                var backend = Images.Open(graph, corrupt, "vhdx", readOnly: true);
                BlockIo.Read(backend, 0, (int)Math.Min(backend.Length, 2 << 20));
            }
            catch (BlockException)
            {
            }
        }
    }
}
