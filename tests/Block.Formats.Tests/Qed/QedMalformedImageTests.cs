using System.Buffers.Binary;
using Block.TestSupport;

namespace Block.Formats.Tests.Qed;

/// <summary>
/// Bad headers and tables: what QEMU refuses we refuse with its words; what it lets through but cannot be trusted (an
/// L1 entry naming a table past the file, an L2 entry naming a cluster past it) is a clear error naming the entry,
/// never a crash, a huge allocation or a write outside the image.
/// </summary>
public class QedMalformedImageTests
{
    private static string MakeImage(TempDirectory dir, string? options = null)
    {
        string image = dir.File("m.qed");
        if (options is null)
            QemuImg.Create("qed", image, "10M");
        else
            QemuImg.Create("qed", image, "10M", options);
        Images.QemuIo(image, "qed", "write -P 0x61 64k 64k");
        return image;
    }

    private static void Patch(string image, long offset, ulong value, int bytes)
    {
        using var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        f.Write(b, 0, bytes);
    }

    [Theory]
    [InlineData(4, 0x11000u, 4)]          // cluster size not a power of two
    [InlineData(4, 0x800u, 4)]            // cluster size too small
    [InlineData(8, 3u, 4)]                // table size
    [InlineData(8, 32u, 4)]               // table size too large
    [InlineData(12, 0x10000u, 4)]         // header size
    [InlineData(12, 2u, 4)]               // header clusters over the L1 table
    [InlineData(16, 8u, 8)]               // unknown feature
    [InlineData(40, 1u, 8)]               // L1 offset misaligned
    [InlineData(40, 0x10000000u, 8)]      // L1 table past the end
    [InlineData(40, 0xffff_ffff_ffff_0000ul, 8)] // L1 offset that overflows
    [InlineData(48, 0x1u, 8)]             // image size not a multiple of 512
    [InlineData(48, 0xffff_ffff_ffff_fe00ul, 8)] // image size past what the tables address
    public void Headers_qemu_refuses_are_refused_with_its_message(long offset, ulong value, int bytes)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        Patch(image, offset, value, bytes);
        var q = QemuImg.Run("info", "-f", "qed", image);
        Assert.Equal(1, q.ExitCode);
        Images.AssertSameOutput("info", "-f", "qed", image);
    }

    [Fact]
    public void Images_with_tables_of_one_cluster_open_in_neither_tool()
    {
        using var dir = new TempDirectory();
        string image = dir.File("t.qed");
        QemuImg.Create("qed", image, "1M", "cluster_size=4k,table_size=1");
        Images.AssertSameOutput("info", "-f", "qed", image);
    }

    [Theory]
    [InlineData(56, 0x10000u)]
    [InlineData(60, 0x10000u)]
    [InlineData(56, 0u)]
    public void Backing_names_outside_the_header_are_refused_with_qemus_message(long offset, uint value)
    {
        using var dir = new TempDirectory();
        QemuImg.Create("raw", dir.File("base.raw"), "10M");
        string image = MakeImage(dir, "backing_file=base.raw,backing_fmt=raw");
        Patch(image, offset, value, 4);
        Images.AssertSameOutput("info", "-f", "qed", image);
    }

    [Fact]
    public void An_l1_entry_naming_a_table_past_the_file_is_an_error_naming_the_entry_and_check_counts_it()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        Patch(image, 0x10000, 0x7000_0000_0000, 8);
        using (var graph = Images.Graph())
        {
            var backend = Images.Open(graph, image, "qed", readOnly: true);
            var e = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 0, 65536));
            Assert.Contains("L1 entry 0 names L2 table offset 0x700000000000", e.Message, StringComparison.Ordinal);
        }
        Images.AssertSameOutput("check", "-f", "qed", image);
        Images.AssertSameOutput("check", "--output=json", "-f", "qed", image);
    }

    [Fact]
    public void Random_corruption_of_header_and_tables_never_crashes_hangs_or_writes_outside_the_image()
    {
        using var dir = new TempDirectory();
        string pristine = MakeImage(dir, "cluster_size=4k,table_size=2");
        var bytes = File.ReadAllBytes(pristine);
        var random = new Random(16);
        for (int i = 0; i < 60; i++)
        {
            var copy = (byte[])bytes.Clone();
            for (int k = 0; k < 1 + random.Next(4); k++)
            {
                int at = random.Next(3) == 0 ? random.Next(64) : random.Next(copy.Length);
                copy[at] = (byte)random.Next(256);
            }
            string image = dir.File($"f{i}.qed");
            File.WriteAllBytes(image, copy);
            long length = copy.Length;
            var r = BlkRunner.Run("io", "-f", "qed", "-c", "read 0 10M", "-c", "write -P 0x33 100k 8k", "-c", "read -P 0x33 100k 8k", image);
            Assert.True(r.ExitCode is 0 or 1, r.Stdout + r.Stderr);
            Assert.True(new FileInfo(image).Length <= length + (1 << 20), "the image grew beyond one allocation");
            BlkRunner.Run("check", "-f", "qed", image);
            File.Delete(image);
        }
    }
}
