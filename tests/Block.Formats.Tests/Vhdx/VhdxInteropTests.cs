using System.Buffers.Binary;
using Block.Formats.Vhdx;
using Block.TestSupport;

namespace Block.Formats.Tests.Vhdx;

/// <summary>
/// vhdx both ways against qemu-img/qemu-io 7.2, dynamic and fixed, with QEMU's block and log sizes: what one tool
/// writes, the other reads identically; <c>qemu-img check</c> finds what the library wrote clean; <c>blk info</c> and
/// <c>check</c> print what qemu-img prints; probing names the format; <c>map</c> shows the holes QEMU cannot.
/// </summary>
public class VhdxInteropTests
{
    private const string Size = "20M";
    private const int SizeBytes = 20 << 20;

    /// <summary>Writes that hit parts of blocks, block boundaries (1 MiB and 8 MiB blocks), unaligned bytes and zeroes.</summary>
    private static readonly string[] Writes =
    [
        "write -P 0xaa 0 4k",
        "write -P 0xbb 1048000 1200",
        "write -P 0xcc 9M 1M",
        "write -z 2200k 16k",
        "write -P 0xee 20967424 4096",
        "write -P 0x5a 8388000 333",
        "write -P 0x11 1500k 2M",
    ];

    public static TheoryData<string> Kinds() =>
        new("subformat=dynamic", "subformat=fixed", "block_size=1M,log_size=2M", "subformat=fixed,block_state_zero=off", "block_state_zero=off");

    [Theory]
    [MemberData(nameof(Kinds))]
    public void What_qemu_io_writes_blk_reads_identically(string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("q.vhdx");
        QemuImg.Create("vhdx", image, Size, options);
        Images.QemuIo(image, "vhdx", Writes);

        byte[] expected = Images.QemuRaw(dir, image, "vhdx");
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "vhdx", readOnly: true);
        Assert.Equal(SizeBytes, backend.Length);
        Assert.Equal(expected, BlockIo.Read(backend, 0, SizeBytes));
        Assert.Equal(expected.AsSpan(8_000_000, 800_000).ToArray(), BlockIo.Read(backend, 8_000_000, 800_000));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void What_blk_writes_qemu_reads_identically_and_check_is_clean(string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vhdx"), theirs = dir.File("q.vhdx");
        BlkRunner.Run("create", "-q", "-f", "vhdx", "-o", options, ours, Size).EnsureSuccess("blk create");
        QemuImg.Create("vhdx", theirs, Size, options);
        Images.BlkIo(ours, "vhdx", Writes);
        Images.QemuIo(theirs, "vhdx", Writes);

        Images.AssertCheckClean(ours, "vhdx");
        Assert.Equal(Images.QemuRaw(dir, theirs, "vhdx"), Images.QemuRaw(dir, ours, "vhdx"));
        Assert.Equal(0, QemuImg.Compare(ours, theirs, "vhdx", "vhdx"));
        // The same writes in the same order put the blocks at the same places and grow the file alike; but with 1 MiB
        // blocks, qemu-io's "write -z" allocates a block (QEMU writes zeroes into it) that we leave unallocated.
        if (!options.Contains("block_size=1M", StringComparison.Ordinal))
        {
            Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);
            Assert.Equal(BatOf(theirs), BatOf(ours));
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Info_and_check_equal_qemu_img_for_images_written_by_either_tool(string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vhdx"), theirs = dir.File("q.vhdx");
        BlkRunner.Run("create", "-q", "-f", "vhdx", "-o", options, ours, Size).EnsureSuccess("blk create");
        QemuImg.Create("vhdx", theirs, Size, options);
        Images.BlkIo(ours, "vhdx", Writes);
        Images.QemuIo(theirs, "vhdx", Writes);
        foreach (string image in new[] { ours, theirs })
        {
            foreach (var command in new[] { new[] { "info" }, ["info", "--output=json"], ["check"], ["check", "--output=json"] })
                Images.AssertSameOutput([.. command, "-f", "vhdx", image]);
            // Probed: no -f.
            Images.AssertSameOutput("info", image);
        }
    }

    [Fact]
    public void Map_shows_the_allocated_blocks_and_the_holes_that_qemu_maps_as_data()
    {
        using var dir = new TempDirectory();
        string image = dir.File("q.vhdx");
        QemuImg.Create("vhdx", image, "64M");
        Images.QemuIo(image, "vhdx", "write -P 0xaa 9M 4k");
        // QEMU 7.2 has no block status for vhdx: one data extent for the whole disk.
        Assert.Contains("\"length\": 67108864, \"depth\": 0, \"present\": true, \"zero\": false, \"data\": true}", QemuImg.MapJsonText(image, "vhdx"));
        var r = BlkRunner.Run("map", "--output=json", "-f", "vhdx", image);
        r.EnsureSuccess("blk map");
        // Block 1 (8-16 MiB) was allocated at the end of the 8 MiB file; the rest reads as zeroes and is not data.
        Assert.Contains("{ \"start\": 0, \"length\": 8388608, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false}", r.Stdout);
        Assert.Contains("{ \"start\": 9437184, \"length\": 4096, \"depth\": 0, \"present\": true, \"zero\": false, \"data\": true, \"offset\": 9437184}", r.Stdout);
        Assert.Contains("{ \"start\": 16777216, \"length\": 50331648, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false}", r.Stdout);
    }

    [Theory]
    [InlineData("3000000", "")]
    [InlineData("64M", "")]
    [InlineData("2G", "")]
    [InlineData("200G", "")]
    [InlineData("4097M", "block_size=1M")]
    [InlineData("20M", "subformat=fixed")]
    [InlineData("20M", "subformat=fixed,block_state_zero=off")]
    [InlineData("20M", "block_state_zero=off")]
    [InlineData("20M", "block_size=1536K,log_size=2999999")]
    [InlineData("20M", "block_size=512M,log_size=1")]
    [InlineData("20M", "subformat=dynamic,preallocation=full")]
    [InlineData("0", "")]
    [InlineData("0", "block_size=1M")]
    [InlineData("0", "block_size=64M,block_state_zero=off")]
    [InlineData("0", "subformat=fixed")]
    public void Created_images_equal_qemu_imgs_byte_for_byte_but_the_guids_and_creator(string size, string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vhdx"), theirs = dir.File("q.vhdx");
        string[] o = options.Length == 0 ? [] : ["-o", options];
        var q = QemuImg.Run(["create", "-f", "vhdx", .. o, theirs, size]);
        var b = BlkRunner.Run(["create", "-f", "vhdx", .. o, ours, size]);
        Assert.Equal(q.Stdout.Replace(theirs, ours, StringComparison.Ordinal), b.Stdout);
        Assert.Equal((q.ExitCode, ""), (b.ExitCode, b.Stderr));
        AssertSameBytesButGuids(theirs, ours);
        Images.AssertCheckClean(ours, "vhdx");
    }

    [Theory]
    [InlineData("65T", "")]
    [InlineData("1M", "preallocation=metadata")]
    [InlineData("1M", "subformat=foo")]
    [InlineData("1M", "block_size=3M")]
    [InlineData("1M", "log_size=0")]
    [InlineData("1M", "log_size=5G")]
    [InlineData("1M", "block_state_zero=maybe")]
    [InlineData("1M", "cluster_size=64k")]
    [InlineData("0", "block_size=256M")]
    public void Create_refuses_what_qemu_img_refuses_with_its_message(string size, string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("x.vhdx");
        string[] o = options.Length == 0 ? [] : ["-o", options];
        var q = QemuImg.Run(["create", "-q", "-f", "vhdx", .. o, image, size]);
        File.Delete(image);
        var b = BlkRunner.Run(["create", "-q", "-f", "vhdx", .. o, image, size]);
        Assert.NotEqual(0, q.ExitCode);
        Assert.Equal((q.ExitCode, BlkRunner.AsBlk(q.Stderr)), (b.ExitCode, b.Stderr));
    }

    [Fact]
    public void Resize_is_declined_as_qemu_img_declines_it()
    {
        using var dir = new TempDirectory();
        string image = dir.File("r.vhdx");
        QemuImg.Create("vhdx", image, "1M");
        Images.AssertSameOutput("resize", "-f", "vhdx", image, "2M");
    }

    [Fact]
    public void Convert_both_ways_keeps_the_content_and_the_result_checks_clean()
    {
        using var dir = new TempDirectory();
        string raw = dir.File("in.raw"), vhdx = dir.File("out.vhdx"), back = dir.File("back.raw");
        var content = new byte[SizeBytes];
        Patterns.Random(300_000, 7).CopyTo(content, 100_000);
        Patterns.Random(1 << 20, 8).CopyTo(content, 17 << 20);
        File.WriteAllBytes(raw, content);
        BlkRunner.Run("convert", "-f", "raw", "-O", "vhdx", raw, vhdx).EnsureSuccess("blk convert to vhdx");
        Images.AssertCheckClean(vhdx, "vhdx");
        Assert.Equal(0, QemuImg.Compare(raw, vhdx, "raw", "vhdx"));
        BlkRunner.Run("convert", "-f", "vhdx", "-O", "raw", vhdx, back).EnsureSuccess("blk convert to raw");
        Assert.Equal(content, File.ReadAllBytes(back));
    }

    [Fact]
    public void A_pending_log_refuses_a_read_only_open_as_qemu_does_and_a_read_write_open_replays_it_as_qemu_does()
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vhdx"), theirs = dir.File("q.vhdx");
        QemuImg.Create("vhdx", theirs, "64M");
        Images.QemuIo(theirs, "vhdx", "write -P 0xaa 0 4k", "write -P 0xbb 9M 4k");
        byte[] expected = Images.QemuRaw(dir, theirs, "vhdx");
        // QEMU left its last log entry (block 1's BAT sector) in the log: arm it again and undo the in-place write, as a
        // crash between the two would have left the file.
        VhdxFixtures.ArmLastLogEntry(theirs, batEntryToClear: 1);
        File.Copy(theirs, ours);

        Images.AssertSameOutput("info", "-f", "vhdx", ours);
        Assert.NotEqual(0, QemuImg.Run("info", "-f", "vhdx", theirs).ExitCode);

        using (var graph = Images.Graph())
        {
            var backend = Images.Open(graph, ours, "vhdx");
            Assert.Equal(expected, BlockIo.Read(backend, 0, 64 << 20));
        }
        QemuImg.Run("check", "-r", "all", "-f", "vhdx", theirs);
        Assert.Equal(expected, Images.QemuRaw(dir, theirs, "vhdx"));
        Images.AssertCheckClean(ours, "vhdx");
        Assert.Equal(BatOf(theirs), BatOf(ours));
    }

    [Fact]
    public void A_log_guid_with_no_entry_is_an_empty_log_that_opens_read_only_as_qemu_opens_it()
    {
        using var dir = new TempDirectory();
        string image = dir.File("g.vhdx");
        QemuImg.Create("vhdx", image, "8M");
        var bytes = File.ReadAllBytes(image);
        var guid = Guid.NewGuid();
        foreach (int at in new[] { 0x10000, 0x20000 })
        {
            var h = VhdxHeader.TryParse(bytes.AsSpan(at, 4096))!.Value;
            (h with { LogGuid = guid }).WriteTo(bytes.AsSpan(at, 4096));
        }
        File.WriteAllBytes(image, bytes);
        Images.AssertSameOutput("info", "-f", "vhdx", image);
        Images.AssertSameOutput("check", "-f", "vhdx", image);
        Images.BlkIo(image, "vhdx", "write -P 0x33 0 4k");
        Images.AssertCheckClean(image, "vhdx");
        QemuIo.RunChecked(image, "vhdx", "read -P 0x33 0 4k");
    }

    /// <summary>The BAT's first sector.</summary>
    private static byte[] BatOf(string image)
    {
        using var f = File.OpenRead(image);
        var table = new byte[64];
        f.Position = VhdxLayout.RegionTable1Offset + 16;
        f.ReadExactly(table);
        long offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(table.AsSpan(16));
        f.Position = offset;
        var bat = new byte[4096];
        f.ReadExactly(bat);
        return bat;
    }

    /// <summary>Asserts two vhdx files are equal apart from the creator string, header sequence numbers and GUIDs, their checksums, and the page 83 GUID.</summary>
    internal static void AssertSameBytesButGuids(string expected, string actual)
    {
        var a = File.ReadAllBytes(expected);
        var b = File.ReadAllBytes(actual);
        Assert.Equal(a.Length, b.Length);
        foreach (var bytes in new[] { a, b })
        {
            bytes.AsSpan(8, 512 - 8).Clear();
            foreach (int header in new[] { 0x10000, 0x20000 })
                bytes.AsSpan(header + 4, 44).Clear();
            long metadata = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(0x30000 + 48 + 16));
            bytes.AsSpan((int)metadata + 0x10010, 16).Clear();
        }
        int first = a.AsSpan().CommonPrefixLength(b);
        Assert.True(first == a.Length, $"the files differ first at byte 0x{first:x}");
    }
}
