using System.Buffers.Binary;
using Block.TestSupport;

namespace Block.Formats.Tests.Qcow;

/// <summary>
/// Bad headers and tables: what QEMU refuses we refuse with its words; what it lets through but cannot be trusted (an
/// L1 table past the file, an L1 entry naming a table past it, an L2 entry naming a cluster past it, a compressed
/// cluster that does not inflate) is a clear error naming the image and the entry, never a crash, a huge allocation or
/// a write outside the image.
/// </summary>
public class QcowMalformedImageTests
{
    private static string MakeImage(TempDirectory dir, string size = "10M")
    {
        string image = dir.File("m.qcow");
        QemuImg.Create("qcow", image, size);
        Images.QemuIo(image, "qcow", "write -P 0x61 64k 64k");
        return image;
    }

    private static void Patch(string image, long offset, ulong value, int bytes)
    {
        using var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value << (64 - 8 * bytes));
        f.Write(b, 0, bytes);
    }

    [Theory]
    [InlineData(4, 2u, 4)]                        // version 2: qcow2's
    [InlineData(4, 7u, 4)]                        // unknown version
    [InlineData(24, 1u, 8)]                       // size 1
    [InlineData(24, 0u, 8)]                       // size 0
    [InlineData(24, 0xffff_ffff_ffff_f000ul, 8)]  // size the tables cannot address
    [InlineData(24, 0x4000_0000_0000_0000ul, 8)]  // an L1 table too large for QEMU
    [InlineData(32, 8u, 1)]                       // cluster bits
    [InlineData(32, 17u, 1)]
    [InlineData(33, 5u, 1)]                       // L2 bits
    [InlineData(33, 14u, 1)]
    [InlineData(36, 2u, 4)]                       // encryption method
    [InlineData(8, 0x30u, 8)]                     // a backing name too long
    public void Headers_qemu_refuses_are_refused_with_its_message(long offset, ulong value, int bytes)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        Patch(image, offset, value, bytes);
        if (offset == 8)
            Patch(image, 16, 1024, 4);
        var q = QemuImg.Run("info", "-f", "qcow", image);
        Assert.Equal(1, q.ExitCode);
        Images.AssertSameOutput("info", "-f", "qcow", image);
    }

    [Fact]
    public void A_qcow2_image_opened_as_qcow_gets_qemus_hint()
    {
        using var dir = new TempDirectory();
        string image = dir.File("v3.qcow2");
        QemuImg.Create("qcow2", image, "1M");
        Images.AssertSameOutput("info", "-f", "qcow", image);
        Images.AssertSameOutput("info", image);
    }

    [Fact]
    public void An_l1_table_past_the_end_of_the_file_is_refused_naming_it_without_allocating_it()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        Patch(image, 24, 1UL << 44, 8); // 16 TiB: 8 Mi entries, 64 MiB of L1 table in a 12 KiB file
        var r = BlkRunner.Run("info", "-f", "qcow", image);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("the L1 table (8388608 entries at offset 0x30) lies past the end of the file", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Entries_naming_tables_or_clusters_past_the_file_are_errors_naming_the_entry()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir);
        Patch(image, 0x30, 0x7000_0000_0000, 8);
        using (var graph = Images.Graph())
        {
            var backend = Images.Open(graph, image, "qcow", readOnly: true);
            var e = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 0, 65536));
            Assert.Contains("L1 entry 0 names L2 table offset 0x700000000000", e.Message, StringComparison.Ordinal);
        }
        image = MakeImage(dir);
        // The L2 table is the first cluster after the header's sector; entry 16 maps 64 KiB.
        Patch(image, 0x1000 + 16 * 8, 0x10_0000_0000, 8);
        using (var graph = Images.Graph())
        {
            var backend = Images.Open(graph, image, "qcow");
            var e = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 65536, 4096));
            Assert.Contains("the L2 entry for guest offset 0x10000 names cluster offset 0x1000000000", e.Message, StringComparison.Ordinal);
            Assert.ThrowsAny<BlockException>(() => BlockIo.Write(backend, 65536, new byte[4096]));
        }
    }

    [Fact]
    public void A_compressed_cluster_that_does_not_inflate_is_an_error_naming_it()
    {
        using var dir = new TempDirectory();
        string raw = dir.File("in.raw"), image = dir.File("c.qcow");
        File.WriteAllBytes(raw, Patterns.Fill(1 << 20, 0x11));
        QemuImg.Run("convert", "-c", "-f", "raw", "-O", "qcow", raw, image); // exits 1 though complete (see QcowInteropTests)
        var bytes = File.ReadAllBytes(image);
        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(0x1000));
        long at = (long)(entry & ((1UL << 51) - 1));
        bytes.AsSpan((int)at, 8).Fill(0xff);
        File.WriteAllBytes(image, bytes);
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "qcow", readOnly: true);
        var e = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 0, 4096));
        Assert.Contains("the compressed cluster for guest offset 0x0", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Random_corruption_of_header_and_tables_never_crashes_hangs_or_writes_outside_the_image()
    {
        using var dir = new TempDirectory();
        string pristine = MakeImage(dir);
        var bytes = File.ReadAllBytes(pristine);
        var random = new Random(17);
        for (int i = 0; i < 60; i++)
        {
            var copy = (byte[])bytes.Clone();
            for (int k = 0; k < 1 + random.Next(4); k++)
            {
                int at = random.Next(3) switch { 0 => random.Next(48), 1 => 0x30 + random.Next(512), _ => random.Next(copy.Length) };
                copy[at] = (byte)random.Next(256);
            }
            string image = dir.File($"f{i}.qcow");
            File.WriteAllBytes(image, copy);
            long length = copy.Length;
            var r = BlkRunner.Run("io", "-f", "qcow", "-c", "read 0 10M", "-c", "write -P 0x33 100k 8k", "-c", "read -P 0x33 100k 8k", image);
            Assert.True(r.ExitCode is 0 or 1, r.Stdout + r.Stderr);
            Assert.True(new FileInfo(image).Length <= length + (1 << 20), "the image grew beyond a few allocations");
            File.Delete(image);
        }
    }
}
