using System.Buffers.Binary;
using Block.TestSupport;
using Block.Vmdk.Format;

namespace Block.Vmdk.Tests;

/// <summary>
/// streamOptimized: zlib-with-header grains behind markers, written once and whole, read from files QEMU and VMware
/// write, and made by <c>blk convert</c> with compression on both cores.
/// </summary>
public class StreamOptimizedTests
{
    private static byte[] Content(int size, int seed)
    {
        // Compressible text-like data, random data, zero grains and a partial last grain.
        var data = new byte[size];
        var rng = new Random(seed);
        for (int i = 0; i < size; i += 65536)
        {
            int n = Math.Min(65536, size - i);
            switch (rng.Next(4))
            {
                case 0:
                    break;
                case 1:
                    rng.NextBytes(data.AsSpan(i, n));
                    break;
                default:
                    for (int j = 0; j < n; j++)
                        data[i + j] = (byte)("block layer "[(i + j) % 12] ^ (j >> 10));
                    break;
            }
        }
        return data;
    }

    [Fact]
    public void Images_qemu_img_convert_makes_read_back_identically()
    {
        using var dir = new TempDirectory();
        var content = Content(3 * 1024 * 1024 + 7 * 512, 1);
        File.WriteAllBytes(dir.File("in.raw"), content);
        QemuImg.Run("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", dir.File("in.raw"), dir.File("s.vmdk")).EnsureSuccess("convert");
        using var graph = Vmdk.Graph();
        var backend = Vmdk.Open(graph, dir.File("s.vmdk"), readOnly: true);
        Assert.Equal(content, BlockIo.Read(backend, 0, content.Length));
        // Small reads inside one compressed grain, and across two.
        Assert.Equal(content.AsSpan(70000, 4096).ToArray(), BlockIo.Read(backend, 70000, 4096));
        Assert.Equal(content.AsSpan(131000, 1000).ToArray(), BlockIo.Read(backend, 131000, 1000));
    }

    [Fact]
    public void Blk_convert_makes_images_qemu_reads_identically_with_valid_markers()
    {
        using var dir = new TempDirectory();
        var content = Content(5 * 1024 * 1024 + 512, 2);
        File.WriteAllBytes(dir.File("in.raw"), content);
        var r = BlkRunner.Run("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", dir.File("in.raw"), dir.File("s.vmdk"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Vmdk.AssertCheckClean(dir.File("s.vmdk"));
        Assert.Equal(0, QemuImg.Run("compare", "-f", "raw", "-F", "vmdk", dir.File("in.raw"), dir.File("s.vmdk")).ExitCode);
        InteropTests.AssertSameOutput(dir.File("s.vmdk"), "map", "--output=json");
        InteropTests.AssertSameOutput(dir.File("s.vmdk"), "info", "--output=json");

        // Every allocated grain entry points at a marker naming that grain's sector, followed by a zlib header.
        var file = File.ReadAllBytes(dir.File("s.vmdk"));
        var header = SparseExtentHeader.Parse(file);
        long gd = (long)header.GrainDirectorySector * 512;
        int grains = 0;
        for (int t = 0; t * 512L * 128 * 512 < content.Length; t++)
        {
            long table = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan((int)(gd + t * 4))) * 512L;
            for (int i = 0; i < 512; i++)
            {
                uint entry = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan((int)(table + i * 4)));
                if (entry == 0)
                    continue;
                var (lba, size) = StreamMarker.ReadGrain(file.AsSpan((int)(entry * 512L)));
                Assert.Equal((ulong)(t * 512 + i) * 128, lba);
                Assert.True(size > 0);
                Assert.Equal(0x78, file[entry * 512L + 12]);
                grains++;
            }
        }
        Assert.True(grains > 10);
        // The stream ends with an end-of-stream marker.
        Assert.False(file.AsSpan(file.Length - 512).ContainsAnyExcept((byte)0));
        // And converts back.
        Assert.Equal(0, BlkRunner.Run("convert", "-f", "vmdk", "-O", "raw", dir.File("s.vmdk"), dir.File("out.raw")).ExitCode);
        Assert.Equal(content, File.ReadAllBytes(dir.File("out.raw")));
    }

    [Fact]
    public void Grains_are_written_once_and_whole_as_qemu_allows()
    {
        using var dir = new TempDirectory();
        string image = dir.File("s.vmdk");
        Vmdk.QemuCreate(image, "1M", "subformat=streamOptimized");
        using (var graph = Vmdk.Graph())
        {
            var backend = Vmdk.Open(graph, image);
            var partial = Assert.Throws<BlockException>(() => BlockIo.Write(backend, 0, Patterns.Fill(4096, 1)));
            Assert.Equal(Errno.EINVAL, partial.Errno);
            BlockIo.Write(backend, 65536, Patterns.Fill(131072, 2));
            var again = Assert.Throws<BlockException>(() => BlockIo.Write(backend, 65536, Patterns.Fill(65536, 3)));
            Assert.Equal(Errno.EIO, again.Errno);
            Assert.Contains("Could not write to allocated cluster for streamOptimized", again.Message);
            // Out of order is fine, and the last grain may end at the end of the disk.
            BlockIo.Write(backend, 0, Patterns.Fill(65536, 4));
            Assert.Equal(Patterns.Fill(65536, 2), BlockIo.Read(backend, 131072, 65536));
        }
        Vmdk.QemuIo(image, "read -P 4 0 64k", "read -P 2 64k 128k", "read -P 0 192k 832k");
        Vmdk.AssertCheckClean(image);
        // qemu-io refuses what the library refuses.
        var q = QemuIo.Run(image, "vmdk", "write -P 5 64k 64k");
        Assert.Contains("write failed: Input/output error", q.Stdout);
    }

    [Fact]
    public void Images_with_the_grain_directory_in_the_footer_are_read_and_refused_for_writing()
    {
        using var dir = new TempDirectory();
        var content = Content(2 * 1024 * 1024 + 4096, 3);
        string image = dir.File("vmware.vmdk");
        VmwareStreamImage.Write(image, content);
        File.WriteAllBytes(dir.File("in.raw"), content);
        Assert.Equal(0, QemuImg.Run("compare", "-f", "raw", "-F", "vmdk", dir.File("in.raw"), image).ExitCode);

        using (var graph = Vmdk.Graph())
        {
            var backend = Vmdk.Open(graph, image, readOnly: true);
            Assert.Equal(content, BlockIo.Read(backend, 0, content.Length));
        }
        InteropTests.AssertSameOutput(image, "map", "--output=json");
        InteropTests.AssertSameOutput(image, "info", "--output=json");
        using var writable = Vmdk.Graph();
        var e = Assert.ThrowsAny<BlockException>(() => Vmdk.Open(writable, image));
        Assert.Contains("footer", e.Message);
    }

    [Fact]
    public void Compressed_copies_of_incompressible_data_still_round_trip()
    {
        using var dir = new TempDirectory();
        var content = Patterns.Random(1 << 20, 9);
        File.WriteAllBytes(dir.File("in.raw"), content);
        Assert.Equal(0, BlkRunner.Run("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", dir.File("in.raw"), dir.File("s.vmdk")).ExitCode);
        Assert.Equal(content, InteropTests.QemuRaw(dir, dir.File("s.vmdk")));
    }

    [Fact]
    public void Convert_minus_c_to_a_plain_sparse_vmdk_is_accepted_and_stores_plain_grains()
    {
        using var dir = new TempDirectory();
        var content = Content(1 << 20, 4);
        File.WriteAllBytes(dir.File("in.raw"), content);
        var ours = BlkRunner.Run("convert", "-c", "-O", "vmdk", dir.File("in.raw"), dir.File("b.vmdk"));
        var theirs = QemuImg.Run("convert", "-c", "-O", "vmdk", dir.File("in.raw"), dir.File("q.vmdk"));
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(QemuImg.MapJsonText(dir.File("q.vmdk"), "vmdk"), QemuImg.MapJsonText(dir.File("b.vmdk"), "vmdk"));
        Assert.Equal(content, InteropTests.QemuRaw(dir, dir.File("b.vmdk")));
    }
}
