using System.Buffers.Binary;
using Block.Formats.Cloop;
using Block.TestSupport;

namespace Block.Formats.Tests.Cloop;

/// <summary>
/// Bad cloop headers, offsets tables and blocks: what QEMU refuses we refuse with its words, what it reads (tables and
/// blocks past the end of the file read as zeroes) we read the same, a corrupt block is an I/O error as in QEMU, and a
/// header that claims a huge table costs no more memory than the file holds.
/// </summary>
public class CloopMalformedImageTests
{
    private static string Sample(TempDirectory dir) =>
        CloopImages.Create(dir, dir.File("s.cloop"), CloopImages.Content((8 << 16) + 4096), 65536);

    private static string Patched(TempDirectory dir, Action<byte[]> patch)
    {
        var bytes = File.ReadAllBytes(Sample(dir));
        patch(bytes);
        string image = dir.File("m.cloop");
        File.WriteAllBytes(image, bytes);
        return image;
    }

    /// <summary>A cloop file of only the script and the two header fields, followed by <paramref name="tail"/>.</summary>
    private static byte[] HeaderOnly(uint blockSize, uint blocks, byte[]? tail = null)
    {
        var bytes = new byte[CloopHeader.Size + (tail?.Length ?? 0)];
        CloopHeader.Magic.CopyTo(bytes);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(128), blockSize);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(132), blocks);
        tail?.CopyTo(bytes, CloopHeader.Size);
        return bytes;
    }

    private static void AssertInfoAsQemu(string image)
    {
        Images.AssertSameOutput("info", "-f", "cloop", image);
        Images.AssertSameOutput("info", image);
    }

    [Theory]
    [InlineData(128, 0u)]                      // block_size cannot be zero
    [InlineData(128, 1000u)]                   // not a multiple of 512
    [InlineData(128, (64u << 20) + 512)]       // over 64 MB
    [InlineData(128, 0xffff_fe00u)]            // far over
    [InlineData(132, 536870912u)]              // n_blocks over QEMU's overflow guard
    [InlineData(132, 536870911u)]              // the largest allowed: QEMU's 32-bit table size wraps to 0
    [InlineData(132, 67108864u)]               // a table over 512 MiB
    [InlineData(132, 100u)]                    // the table runs into the compressed data: a block too large
    [InlineData(136 + 16, 1u)]                 // offsets[2] below offsets[1]
    [InlineData(136 + 16, 0x3000_0000u)]       // offsets[2]'s high half: a block of 768 MiB+
    [InlineData(136, 0x7fff_ffffu)]            // offsets[0] above offsets[1]
    [InlineData(136 + 8 * 9, 0x0100_0000u)]    // the last offset far past the end: the last block too large
    public void Headers_and_tables_qemu_refuses_are_refused_with_its_message(int offset, uint value)
    {
        using var dir = new TempDirectory();
        string image = Patched(dir, b => BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(offset), value));
        Assert.Equal(1, QemuImg.Run("info", "-f", "cloop", image).ExitCode);
        AssertInfoAsQemu(image);
    }

    [Theory]
    [InlineData(100)]    // shorter than the header: block size reads as zero
    [InlineData(130)]    // block size half read: 64 KiB, no blocks
    [InlineData(200)]    // the table cut after 8 entries: the rest reads as zero, smaller than before it
    [InlineData(140)]    // the table cut inside its first entry
    public void Files_cut_short_open_or_fail_as_in_qemu(int length)
    {
        using var dir = new TempDirectory();
        string image = dir.File("short.cloop");
        File.WriteAllBytes(image, File.ReadAllBytes(Sample(dir))[..length]);
        AssertInfoAsQemu(image);
    }

    [Theory]
    [InlineData(65536u, 1000u)]                // a table wholly past the end: all zero, so valid
    [InlineData(64u << 20, 32768u)]            // 2 TiB of disk: QEMU's 32-bit sector count wraps to 0
    [InlineData(65536u, 67108862u)]            // QEMU's largest table (512 MiB), none of it in the file
    public void Tables_past_the_end_of_the_file_open_as_in_qemu_and_their_blocks_fail_to_read(uint blockSize, uint blocks)
    {
        using var dir = new TempDirectory();
        string image = dir.File("h.cloop");
        File.WriteAllBytes(image, HeaderOnly(blockSize, blocks));
        AssertInfoAsQemu(image);
        Assert.Contains("read failed: Input/output error", IoComparison.AssertSameReadOnly(image, "cloop", "read 0 512"), StringComparison.Ordinal);
    }

    [Fact]
    public void Only_the_part_of_the_table_inside_the_file_is_read_into_memory()
    {
        var header = new CloopHeader(65536, 67108862);
        Assert.Equal(0, CloopOffsets.StoredBytes(header, CloopHeader.Size));
        Assert.Equal(64, CloopOffsets.StoredBytes(header, CloopHeader.Size + 64));
        Assert.Equal(16, CloopOffsets.StoredBytes(new CloopHeader(512, 1), 1 << 30));
    }

    [Theory]
    [InlineData(0)]      // corrupt the first block's zlib header
    [InlineData(3)]      // corrupt its deflate data
    [InlineData(-1)]     // corrupt the last byte of the block before the last (its Adler-32)
    public void Corrupt_blocks_are_io_errors_and_the_others_read_as_in_qemu(int at)
    {
        using var dir = new TempDirectory();
        string image = Patched(dir, b =>
        {
            long first = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(136));
            long lastButOne = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(136 + 8 * 8));
            b[at >= 0 ? first + at : lastButOne - 1] ^= 0x55;
        });
        var commands = Enumerable.Range(0, 9).Select(i => $"read -v {i * 65536 + 1000} 32").ToArray();
        Assert.Contains("read failed: Input/output error", IoComparison.AssertSameReadOnly(image, "cloop", commands), StringComparison.Ordinal);
    }

    [Fact]
    public void A_last_block_past_the_end_of_the_file_reads_as_zeroes_there_and_fails_as_in_qemu()
    {
        using var dir = new TempDirectory();
        string full = Sample(dir), image = dir.File("cut.cloop");
        var bytes = File.ReadAllBytes(full);
        File.WriteAllBytes(image, bytes[..^100]);
        var commands = new[] { "read -v 1000 32", "read -v 532000 32" };
        Assert.Contains("read failed: Input/output error", IoComparison.AssertSameReadOnly(image, "cloop", commands), StringComparison.Ordinal);
    }
}
