using Block.Graph;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// External data files (<c>data_file</c>, raw or not), backing chains of several images mixing qcow2 and raw, the
/// backing format recorded in the image, and backing loops.
/// </summary>
public class DataFileAndChainTests
{
    private const int K = 1024;
    private const int M = 1024 * 1024;

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public async Task An_image_with_an_external_data_file_reads_and_writes_as_qemu_does(bool dataFileRaw, bool extendedL2)
    {
        using var dir = new TempDirectory();
        string image = dir.File("img.qcow2");
        string data = dir.File("img.data");
        QemuImg.Create("qcow2", image, "6M",
            $"data_file={data},data_file_raw={(dataFileRaw ? "on" : "off")}{(extendedL2 ? ",extended_l2=on" : "")}");
        QemuIo.RunChecked(image, "qcow2",
            "write -P 0x11 0 1M",
            "write -P 0x22 1500k 3000",
            "write -z 256k 128k",
            "write -z -u 512k 64k",
            "discard 768k 128k",
            "write -P 0x33 5M 4k");
        Qcow2Images.AssertSameBytes(Qcow2Images.ReadWithQemu(image), await Qcow2Images.ReadWithLibraryAsync(image), "library read");

        ModelledImage img;
        await using (var graph = Qcow2Images.NewGraph())
        {
            byte[] initial = Qcow2Images.ReadWithQemu(image);
            var backend = await Qcow2Images.OpenAsync(graph, image);
            img = new ModelledImage(backend, initial, 64 * K);
            await img.WriteAsync(100, 200 * K, 1);
            await img.WriteAsync(2 * M + 5, 70 * K, 2);
            await img.ZeroAsync(3 * M, 128 * K, mayUnmap: false);
            await img.ZeroAsync(40 * K, 300 * K, mayUnmap: true);
            await img.DiscardAsync(4 * M, 256 * K);
            await img.DiscardAsync(0, 64 * K);
            await img.WriteAsync(6 * M - 1000, 1000, 3);
            var compressed = await Assert.ThrowsAsync<BlockException>(async () =>
                await backend.WriteAsync(M, ModelledImage.Compressible(64 * K, 1), RequestFlags.Compressed));
            Assert.Equal(Errno.ENOTSUP, compressed.Errno);
            await img.AssertReadsBackAsync("library read-back");
        }

        Qcow2Images.AssertCheckClean(image);
        Qcow2Images.AssertSameBytes(img.Expected, Qcow2Images.ReadWithQemu(image), "qemu read-back");
        if (dataFileRaw)
        {
            // data_file_raw promises that the data file alone is the disk, zeroed and discarded ranges included.
            Qcow2Images.AssertSameBytes(img.Expected, File.ReadAllBytes(data), "the raw data file");
        }
        // No guest data went into the qcow2 file itself.
        Assert.True(new FileInfo(image).Length < 1 * M, $"qcow2 file grew to {new FileInfo(image).Length} bytes");
    }

    [Fact]
    public async Task An_external_data_file_image_over_a_backing_file_copies_on_write_from_the_backing_file()
    {
        using var dir = new TempDirectory();
        string basePath = dir.File("base.qcow2");
        string image = dir.File("img.qcow2");
        QemuImg.Create("qcow2", basePath, "2M");
        QemuIo.RunChecked(basePath, "qcow2", "write -P 0x5a 0 2M");
        QemuImg.Create("qcow2", image, "2M", $"data_file={dir.File("img.data")},backing_file=base.qcow2,backing_fmt=qcow2");
        QemuIo.RunChecked(image, "qcow2", "write -P 0x11 64k 1000");
        Qcow2Images.AssertSameBytes(Qcow2Images.ReadWithQemu(image), await Qcow2Images.ReadWithLibraryAsync(image), "library read");

        ModelledImage img;
        await using (var graph = Qcow2Images.NewGraph())
        {
            byte[] initial = Qcow2Images.ReadWithQemu(image);
            img = new ModelledImage(await Qcow2Images.OpenAsync(graph, image), initial, 64 * K);
            await img.WriteAsync(300 * K + 7, 5000, 1);
            await img.WriteAsync(64 * K + 2000, 100, 2);
            await img.ZeroAsync(1 * M, 64 * K, mayUnmap: true);
            await img.DiscardAsync(1536 * K, 128 * K);
        }
        Qcow2Images.AssertCheckClean(image);
        Qcow2Images.AssertSameBytes(img.Expected, Qcow2Images.ReadWithQemu(image), "qemu read-back");
    }

    [Fact]
    public async Task A_chain_of_four_images_mixing_raw_and_qcow2_reads_and_writes_as_qemu_does()
    {
        using var dir = new TempDirectory();
        // raw (3M) <- v2, 4k clusters (4M) <- v3 extended L2 (5M) <- v3, 512-byte clusters, zstd (6M)
        string raw = dir.File("base.raw");
        string l1 = dir.File("l1.qcow2");
        string l2 = dir.File("l2.qcow2");
        string top = dir.File("top.qcow2");
        QemuImg.Create("raw", raw, "3M");
        QemuIo.RunChecked(raw, "raw", "write -P 0x01 0 3M");
        QemuImg.Create("qcow2", l1, "4M", "compat=0.10,cluster_size=4096,backing_file=base.raw,backing_fmt=raw");
        QemuIo.RunChecked(l1, "qcow2", "write -P 0x02 1M 1M", "write -P 0x03 3M 512k", "write -c -P 0x04 2M 64k", "write -z 100k 8k");
        QemuImg.Create("qcow2", l2, "5M", "extended_l2=on,backing_file=l1.qcow2,backing_fmt=qcow2");
        QemuIo.RunChecked(l2, "qcow2", "write -P 0x05 1500k 10k", "write -z 2M 4k", "discard 3M 64k", "write -P 0x06 4M 512k");
        QemuImg.Create("qcow2", top, "6M", "cluster_size=512,compression_type=zstd,backing_file=l2.qcow2,backing_fmt=qcow2");
        QemuIo.RunChecked(top, "qcow2", "write -P 0x07 1M 1000", "write -c -P 0x08 5M 512", "write -z 2900k 300k");

        var before = new Dictionary<string, byte[]>
        {
            [l1] = Qcow2Images.ReadWithQemu(l1),
            [l2] = Qcow2Images.ReadWithQemu(l2),
        };
        Qcow2Images.AssertSameBytes(Qcow2Images.ReadWithQemu(top), await Qcow2Images.ReadWithLibraryAsync(top), "library read of the top");
        Qcow2Images.AssertSameBytes(before[l2], await Qcow2Images.ReadWithLibraryAsync(l2), "library read of the middle");

        ModelledImage img;
        await using (var graph = Qcow2Images.NewGraph())
        {
            byte[] initial = Qcow2Images.ReadWithQemu(top);
            var backend = await Qcow2Images.OpenAsync(graph, top);
            Assert.Equal(3, backend.Root!.BackingDepth);
            img = new ModelledImage(backend, initial, 512);
            // Partial sectors and clusters over every layer: the copy-on-write reads come from three images down.
            await img.WriteAsync(1, 3, 1);
            await img.WriteAsync(M - 300, 20 * K, 2);
            await img.WriteAsync(2 * M + 100, 70 * K, 3);
            await img.WriteAsync(3 * M - 10, 20, 4);
            await img.ZeroAsync(4 * M + 1, 1000, mayUnmap: false);
            await img.DiscardAsync(1500 * K, 4 * K);
            await img.AssertReadsBackAsync("library read-back");
        }
        Qcow2Images.AssertCheckClean(top);
        Qcow2Images.AssertSameBytes(img.Expected, Qcow2Images.ReadWithQemu(top), "qemu read-back");
        foreach (var (path, bytes) in before)
            Qcow2Images.AssertSameBytes(bytes, Qcow2Images.ReadWithQemu(path), $"{Path.GetFileName(path)} untouched");
    }

    [Fact]
    public async Task The_recorded_backing_format_is_honoured_even_over_a_qcow2_file()
    {
        using var dir = new TempDirectory();
        string basePath = dir.File("base.qcow2");
        string top = dir.File("top.qcow2");
        QemuImg.Create("qcow2", basePath, "1M");
        QemuIo.RunChecked(basePath, "qcow2", "write -P 0x11 0 64k");
        // backing_fmt=raw: the base's file bytes are the backing disk, header and all.
        QemuImg.Create("qcow2", top, "1M", "backing_file=base.qcow2,backing_fmt=raw");
        byte[] library = await Qcow2Images.ReadWithLibraryAsync(top);
        Qcow2Images.AssertSameBytes(Qcow2Images.ReadWithQemu(top), library, "library read");
        Assert.Equal([0x51, 0x46, 0x49, 0xfb], library[..4]);
    }

    [Fact]
    public async Task A_raw_file_recorded_as_a_qcow2_backing_file_is_refused_as_qemu_refuses_it()
    {
        using var dir = new TempDirectory();
        string raw = dir.File("base.raw");
        string top = dir.File("top.qcow2");
        QemuImg.Create("raw", raw, "1M");
        QemuImg.Create("qcow2", top, "1M", "backing_file=base.raw,backing_fmt=raw");
        QemuImg.Run("rebase", "-u", "-b", "base.raw", "-F", "qcow2", top).EnsureSuccess("qemu-img rebase");
        var qemu = QemuIo.Run(top, "qcow2", "read 0 512");
        Assert.Contains("Image is not in qcow2 format", qemu.Stderr + qemu.Stdout);

        await using var graph = Qcow2Images.NewGraph();
        var e = await Assert.ThrowsAnyAsync<BlockException>(async () => await Qcow2Images.OpenAsync(graph, top, readOnly: true));
        Assert.Contains("Image is not in qcow2 format", e.Message);
    }

    [Theory]
    [InlineData("self")]
    [InlineData("pair")]
    [InlineData("symlink")]
    public async Task A_backing_loop_is_refused_with_an_error_that_says_so(string shape)
    {
        using var dir = new TempDirectory();
        string a = dir.File("a.qcow2");
        string b = dir.File("b.qcow2");
        QemuImg.Create("qcow2", a, "1M");
        switch (shape)
        {
            case "self":
                QemuImg.Run("rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", a).EnsureSuccess("qemu-img rebase");
                break;
            case "pair":
                QemuImg.Create("qcow2", b, "1M", "backing_file=a.qcow2,backing_fmt=qcow2");
                QemuImg.Run("rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", a).EnsureSuccess("qemu-img rebase");
                break;
            default:
                File.CreateSymbolicLink(dir.File("link.qcow2"), a);
                QemuImg.Run("rebase", "-u", "-b", "link.qcow2", "-F", "qcow2", a).EnsureSuccess("qemu-img rebase");
                break;
        }
        // qemu-img info (not qemu-io, which hangs in 7.2) names the loop.
        Assert.Contains("infinite loop", QemuImg.Run("info", "--backing-chain", a).Stderr);

        foreach (bool readOnly in new[] { true, false })
        {
            await using var graph = Qcow2Images.NewGraph();
            var e = await Assert.ThrowsAsync<BlockException>(async () => await Qcow2Images.OpenAsync(graph, a, readOnly));
            Assert.Equal(Errno.ELOOP, e.Errno);
            Assert.Contains("loop", e.Message);
            Assert.Empty(graph.Nodes);
        }
    }
}
