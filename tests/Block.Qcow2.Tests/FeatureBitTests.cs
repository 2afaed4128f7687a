using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// Feature bits (iotests 036 and 039): unknown incompatible bits refuse the open and are named from the image's own
/// feature table; unknown autoclear bits are cleared by the first read-write open, with the header rewritten as qemu
/// rewrites it; a dirty image (lazy refcounts) is repaired by a read-write open and left alone by a read-only one.
/// </summary>
public class FeatureBitTests
{
    private const uint FeatureTableExtension = 0x6803f857;

    [Fact]
    public async Task Unknown_incompatible_bits_are_named_from_the_images_feature_table_as_qemu_names_them()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "1M");
        long table = ImageFile.FindExtension(path, FeatureTableExtension);
        Assert.True(table > 0);
        // Entry 5 of qemu's table now names incompatible bit 10.
        ImageFile.Poke(path, table + 5 * 48, [0, 10, .. "xyzzy"u8, 0]);
        ImageFile.PokeBe64(path, ImageFile.IncompatibleFeatures, (1UL << 10) | (1UL << 12));
        const string message = "Unsupported qcow2 feature(s): xyzzy, Unknown incompatible feature: 1000";
        Assert.Contains(message, QemuIo.Run(path, "qcow2", "read 0 512").Stderr);

        await using var graph = Qcow2Images.NewGraph();
        var e = await Hostile.RefusedAsync(() => Qcow2Images.OpenAsync(graph, path, readOnly: true).AsTask());
        Assert.Equal(message, e.Message);
        Assert.Equal(Errno.ENOTSUP, e.Errno);
    }

    [Fact]
    public async Task Unknown_autoclear_bits_are_cleared_by_a_read_write_open_exactly_as_qemu_rewrites_the_header()
    {
        using var dir = new TempDirectory();
        string path = HostileHeaderTests.MakeImage(dir);
        const ulong unknown = (1UL << 63) | (1UL << 5);
        ImageFile.PokeBe64(path, ImageFile.AutoclearFeatures, unknown);
        string twin = dir.File("twin.qcow2");
        File.Copy(path, twin);

        await using (var graph = Qcow2Images.NewGraph())
            await Qcow2Images.OpenAsync(graph, path, readOnly: true);
        Assert.Equal(unknown, ImageFile.PeekBe64(path, ImageFile.AutoclearFeatures));

        await using (var graph = Qcow2Images.NewGraph())
            await Qcow2Images.OpenAsync(graph, path);
        Assert.Equal(0UL, ImageFile.PeekBe64(path, ImageFile.AutoclearFeatures));

        QemuIo.RunChecked(twin, "qcow2", "read 0 512");
        Assert.Equal(0UL, ImageFile.PeekBe64(twin, ImageFile.AutoclearFeatures));
        Assert.Equal(ImageFile.Peek(twin, 0, 65536), ImageFile.Peek(path, 0, 65536));
        Qcow2Images.AssertCheckClean(path);
    }

    [Fact]
    public async Task A_dirty_image_is_repaired_by_a_read_write_open_and_untouched_by_a_read_only_one()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "64M", "lazy_refcounts=on");
        // qemu-io's abort leaves the refcounts stale and the dirty bit set (iotest 039).
        QemuIo.Run(path, "qcow2", "write -P 0x5a 0 512", "write -P 0x5b 1M 64k", "abort");
        Assert.Equal(1UL, ImageFile.PeekBe64(path, ImageFile.IncompatibleFeatures) & 1);
        Assert.NotEqual(0, QemuImg.Check(path, "qcow2").ExitCode);

        await using (var graph = Qcow2Images.NewGraph())
        {
            var backend = await Qcow2Images.OpenAsync(graph, path, readOnly: true);
            var head = new byte[512];
            await backend.ReadAsync(0, head);
            Assert.Equal(Patterns.Fill(512, 0x5a), head);
        }
        Assert.Equal(1UL, ImageFile.PeekBe64(path, ImageFile.IncompatibleFeatures) & 1);

        await using (var graph = Qcow2Images.NewGraph())
            await Qcow2Images.OpenAsync(graph, path);
        Assert.Equal(0UL, ImageFile.PeekBe64(path, ImageFile.IncompatibleFeatures) & 1);
        Qcow2Images.AssertCheckClean(path);
        var bytes = Qcow2Images.ReadWithQemu(path);
        Assert.Equal(Patterns.Fill(512, 0x5a), bytes[..512]);
        Assert.Equal(Patterns.Fill(65536, 0x5b), bytes[(1 << 20)..((1 << 20) + 65536)]);
    }
}
