using Block.Drivers.Vvfat;
using Block.Graph;
using Block.TestSupport;

namespace Block.Tests.Vvfat;

/// <summary>QEMU's <c>fat:</c> file names and <c>BlockdevOptionsVVFAT</c>: what they select, how the node is named, what is refused.</summary>
public class VvfatOptionsTests
{
    [Theory]
    [InlineData("fat:d", "d", 0L, false, false)]
    [InlineData("fat:16:d", "d", 16L, false, false)]
    [InlineData("fat:floppy:rw:12:/x/y", "/x/y", 12L, true, true)]
    [InlineData("fat:32:rw:d", "d", 32L, false, true)]
    [InlineData("fat:13:d", "d", 0L, false, false)]
    [InlineData("fat:s:extra", "s:extra", 0L, false, false)]
    public void File_names_select_what_qemu_selects(string filename, string dir, long fatType, bool floppy, bool rw)
    {
        var options = VvfatFilename.Parse(filename);
        Assert.Equal(dir, options.Dir);
        Assert.Equal(fatType, options.FatType);
        Assert.Equal(floppy, options.Floppy);
        Assert.Equal(rw, options.Rw);
    }

    [Theory]
    [InlineData("fat:16:{0}")]
    [InlineData("fat:floppy:12:{0}")]
    [InlineData("fat:{0}")]
    [InlineData("""json:{{"driver":"vvfat","dir":"{0}","label":"abc","floppy":true,"fat-type":16,"rw":false}}""")]
    public async Task Node_is_named_as_qemu_img_info_names_it(string pattern)
    {
        using var dir = new TempDirectory();
        string tree = dir.File("t");
        Directory.CreateDirectory(tree);
        File.WriteAllText(Path.Combine(tree, "f"), "f");
        string filename = string.Format(System.Globalization.CultureInfo.InvariantCulture, pattern, tree);
        var info = QemuImg.Run("info", "-f", "vvfat", "--output=json", filename).EnsureSuccess("qemu-img info");
        string expected = System.Text.Json.Nodes.JsonNode.Parse(info.Stdout)!["filename"]!.GetValue<string>();

        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync(filename, new ImageOpenOptions { Format = "vvfat", ReadOnly = true });
        // QEMU echoes the values of a json: name as it got them; its typed members are what the schema says they are.
        Assert.Equal(expected, backend.Root!.Filename);
        long size = System.Text.Json.Nodes.JsonNode.Parse(info.Stdout)!["virtual-size"]!.GetValue<long>();
        Assert.Equal(size, backend.Length);
    }

    [Fact]
    public async Task A_label_longer_than_11_bytes_is_refused_with_qemus_message()
    {
        using var dir = new TempDirectory();
        await using var graph = new BlockGraph();
        var e = await Assert.ThrowsAsync<BlockOptionsException>(async () => await graph.OpenImageAsync(
            $$"""json:{"driver":"vvfat","dir":"{{dir.Path}}","label":"HELLOWORLD12"}""", new ImageOpenOptions { ReadOnly = true }));
        Assert.Equal("vvfat label cannot be longer than 11 bytes", e.Message);
    }

    [Fact]
    public async Task A_fat_type_other_than_12_16_32_is_refused_with_qemus_message()
    {
        using var dir = new TempDirectory();
        await using var graph = new BlockGraph();
        var e = await Assert.ThrowsAsync<BlockOptionsException>(async () => await graph.OpenImageAsync(
            $$"""json:{"driver":"vvfat","dir":"{{dir.Path}}","fat-type":8}""", new ImageOpenOptions { ReadOnly = true }));
        Assert.Equal("Valid FAT types are only 12, 16 and 32", e.Message);
    }

    [Fact]
    public async Task Fat32_on_a_floppy_is_refused()
    {
        using var dir = new TempDirectory();
        await using var graph = new BlockGraph();
        var e = await Assert.ThrowsAsync<BlockOptionsException>(async () => await graph.OpenImageAsync(
            "fat:floppy:32:" + dir.Path, new ImageOpenOptions { Format = "vvfat", ReadOnly = true }));
        Assert.Contains("a floppy cannot hold FAT32", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rw_opens_writable_and_keeps_the_disk_qemus()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("f"), "f");
        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync("fat:rw:" + dir.Path, new ImageOpenOptions { Format = "vvfat" });
        Assert.False(backend.Root!.ReadOnly);
        Assert.Equal(528482304, backend.Length);
        await using var readOnlyGraph = new BlockGraph();
        var readOnly = await readOnlyGraph.OpenImageAsync("fat:" + dir.Path, new ImageOpenOptions { Format = "vvfat", ReadOnly = true });
        // Until written, the writable disk is the read-only one (MBR, boot sector, FATs, root directory, first cluster).
        Assert.Equal(BlockIo.Read(readOnly, 0, 1 << 20), BlockIo.Read(backend, 0, 1 << 20));
    }

    [Fact]
    public async Task Rw_on_a_read_only_open_gets_qemus_message()
    {
        using var dir = new TempDirectory();
        await using var graph = new BlockGraph();
        var e = await Assert.ThrowsAsync<BlockException>(async () => await graph.OpenImageAsync(
            "fat:rw:" + dir.Path, new ImageOpenOptions { Format = "vvfat", ReadOnly = true }));
        string qemu = QemuImg.Run("info", "-f", "vvfat", "fat:rw:" + dir.Path).Stderr;
        Assert.Contains(e.Message, qemu, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_writable_open_without_rw_is_refused_as_qemu_refuses_it()
    {
        using var dir = new TempDirectory();
        await using var graph = new BlockGraph();
        var e = await Assert.ThrowsAsync<BlockException>(async () => await graph.OpenImageAsync(
            "fat:16:" + dir.Path, new ImageOpenOptions { Format = "vvfat" }));
        Assert.Equal("Image is read-only", e.Message);
        var qemu = ProcessRunner.Run("qemu-io", ["-f", "vvfat", "-c", "read 0 512", "fat:16:" + dir.Path]);
        Assert.Contains("Image is read-only", qemu.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_format_the_fat_prefix_opens_raw_over_vvfat_as_qemu_does()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("f"), "f");
        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync("fat:16:" + dir.Path, new ImageOpenOptions { ReadOnly = true, AllowProbing = true });
        Assert.Equal("raw", backend.Root!.DriverName);
        Assert.Equal(528482304, backend.Length);
        var mbr = BlockIo.Read(backend, 0, 512);
        Assert.Equal(0x55, mbr[510]);
        Assert.Equal(0xaa, mbr[511]);
    }
}
