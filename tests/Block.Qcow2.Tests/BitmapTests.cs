using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// Persistent dirty bitmaps (the bitmaps extension): Block reads the bits qemu recorded, records and stores writes the
/// way qemu does (byte for byte), marks bitmaps in use while it holds them, treats bitmaps left in use as inconsistent,
/// ignores a stale extension, and refuses malformed directories and tables with qemu's messages.
/// </summary>
public class BitmapTests
{
    private const long Disk = 64 << 20;

    /// <summary>The requests both tools make: qemu-io's commands and the same requests through the library.</summary>
    private static readonly string[] QemuIoCommands = ["write 0 1k", "write 1M 3k", "write -z 2M 4k", "discard 3M 64k", "write 63M 1M"];

    private static readonly (long Offset, long Length)[] Requests = [(0, 1024), (1 << 20, 3072), (2 << 20, 4096), (3 << 20, 65536), (63 << 20, 1 << 20)];

    /// <summary>An image with b0 (64 KiB, recording), b1 (512 bytes, recording) and b2 (64 KiB, disabled), made by qemu-img.</summary>
    private static string MakeImage(TempDirectory dir, string name = "img.qcow2")
    {
        string path = dir.File(name);
        QemuImg.Create("qcow2", path, "64M");
        QemuImg.Run("bitmap", "--add", path, "b0").EnsureSuccess("qemu-img bitmap");
        QemuImg.Run("bitmap", "--add", "-g", "512", path, "b1").EnsureSuccess("qemu-img bitmap");
        QemuImg.Run("bitmap", "--add", "--disable", path, "b2").EnsureSuccess("qemu-img bitmap");
        return path;
    }

    private static async Task WriteThroughLibraryAsync(string path)
    {
        await using var graph = Qcow2Images.NewGraph();
        var backend = await Qcow2Images.OpenAsync(graph, path);
        await backend.WriteAsync(0, Patterns.Fill(1024, 0xcd));
        await backend.WriteAsync(1 << 20, Patterns.Fill(3072, 0xcd));
        await backend.WriteZeroesAsync(2 << 20, 4096);
        await backend.DiscardAsync(3 << 20, 65536);
        await backend.WriteAsync(63 << 20, Patterns.Fill(1 << 20, 0xcd));
    }

    [Fact]
    public async Task The_bits_qemu_recorded_are_read_exactly()
    {
        using var dir = new TempDirectory();
        string path = MakeImage(dir);
        QemuIo.RunChecked(path, "qcow2", QemuIoCommands);

        await using var graph = Qcow2Images.NewGraph();
        var node = (await Qcow2Images.OpenAsync(graph, path, readOnly: true)).Root!;
        Assert.Equal(["b0", "b1", "b2"], node.DirtyBitmaps.Select(b => b.Name));
        Assert.Equal(StoredBitmaps.Expected(Disk, 16, Requests), node.GetDirtyBitmap("b0").DirtyRanges());
        Assert.Equal(StoredBitmaps.Expected(Disk, 9, Requests), node.GetDirtyBitmap("b1").DirtyRanges());
        Assert.Empty(node.GetDirtyBitmap("b2").DirtyRanges());
        Assert.All(node.DirtyBitmaps, b => Assert.True(b.Persistent && b.ReadOnly && !b.Inconsistent));
        Assert.False(node.GetDirtyBitmap("b2").Enabled);
    }

    [Fact]
    public async Task Writes_through_the_library_are_recorded_and_stored_byte_for_byte_as_qemu_stores_them()
    {
        using var dir = new TempDirectory();
        string ours = MakeImage(dir, "ours.qcow2");
        string theirs = dir.File("theirs.qcow2");
        File.Copy(ours, theirs);

        await WriteThroughLibraryAsync(ours);
        QemuIo.RunChecked(theirs, "qcow2", QemuIoCommands);

        Qcow2Images.AssertSameBytes(File.ReadAllBytes(theirs), File.ReadAllBytes(ours), "image");
        Qcow2Images.AssertCheckClean(ours);
        var stored = StoredBitmaps.Read(ours);
        Assert.Equal(StoredBitmaps.Expected(Disk, 16, Requests), stored[0].Dirty);
        Assert.Equal(StoredBitmaps.Expected(Disk, 9, Requests), stored[1].Dirty);
        Assert.Empty(stored[2].Dirty);
        Assert.Equal([2u, 2u, 0u], stored.Select(s => s.Flags));
    }

    [Fact]
    public async Task Qemu_reads_the_bits_Block_stored()
    {
        using var dir = new TempDirectory();
        string path = MakeImage(dir);
        await WriteThroughLibraryAsync(path);

        // qemu-img convert --bitmaps reads our bitmaps and writes its own copies.
        string copy = dir.File("copy.qcow2");
        QemuImg.Run("convert", "--bitmaps", "-O", "qcow2", path, copy).EnsureSuccess("qemu-img convert");
        var copied = StoredBitmaps.Read(copy);
        Assert.Equal(StoredBitmaps.Expected(Disk, 16, Requests), copied.Single(b => b.Name == "b0").Dirty);
        Assert.Equal(StoredBitmaps.Expected(Disk, 9, Requests), copied.Single(b => b.Name == "b1").Dirty);

        // qemu-img bitmap --merge into a new bitmap of another granularity, read back by the library.
        QemuImg.Run("bitmap", "--add", "-g", "1M", "--merge", "b1", path, "m").EnsureSuccess("qemu-img bitmap");
        await using var graph = Qcow2Images.NewGraph();
        var node = (await Qcow2Images.OpenAsync(graph, path, readOnly: true)).Root!;
        Assert.Equal(StoredBitmaps.Expected(Disk, 20, Requests), node.GetDirtyBitmap("m").DirtyRanges());
    }

    [Fact]
    public async Task A_read_write_open_marks_the_bitmaps_in_use_until_a_clean_close()
    {
        using var dir = new TempDirectory();
        string path = MakeImage(dir);
        await using (var graph = Qcow2Images.NewGraph())
        {
            await Qcow2Images.OpenAsync(graph, path);
            Assert.Equal([3u, 3u, 1u], StoredBitmaps.Read(path).Select(s => s.Flags));
            var info = QemuImg.Run("info", "-U", "--output=json", path).EnsureSuccess("qemu-img info").Stdout;
            Assert.Contains("\"in-use\"", info);
        }
        Assert.Equal([2u, 2u, 0u], StoredBitmaps.Read(path).Select(s => s.Flags));
        Qcow2Images.AssertCheckClean(path);
    }

    [Fact]
    public async Task Bitmaps_left_in_use_by_a_crash_are_inconsistent_kept_as_they_are_and_removable()
    {
        using var dir = new TempDirectory();
        string path = MakeImage(dir);
        // qemu-io killed while holding the bitmaps leaves them in use on disk.
        QemuIo.Run(path, "qcow2", "write 0 64k", "sigraise 9");
        var before = StoredBitmaps.Read(path);
        Assert.All(before, s => Assert.Equal(1u, s.Flags & 1));

        await using (var graph = Qcow2Images.NewGraph())
        {
            var backend = await Qcow2Images.OpenAsync(graph, path);
            var node = backend.Root!;
            Assert.All(node.DirtyBitmaps, b => Assert.True(b.Inconsistent));
            var e = Assert.Throws<BlockException>(() => node.ClearDirtyBitmap("b0"));
            Assert.Equal("Bitmap 'b0' is inconsistent and cannot be used\nTry block-dirty-bitmap-remove to delete this bitmap from disk", e.Message);
            var resize = await Assert.ThrowsAsync<BlockException>(() => backend.TruncateAsync(128 << 20).AsTask());
            Assert.Equal(Errno.ENOTSUP, resize.Errno);
            await backend.WriteAsync(1 << 20, new byte[4096]);
            await node.RemoveDirtyBitmapAsync("b1");
        }
        var after = StoredBitmaps.Read(path);
        Assert.Equal(["b0", "b2"], after.Select(s => s.Name));
        Assert.Equal(before.Where(s => s.Name != "b1"), after, (x, y) => x.TableOffset == y.TableOffset && x.Flags == y.Flags);
        Qcow2Images.AssertCheckClean(path);
        Assert.Contains("in-use", QemuImg.Run("info", path).Stdout);
    }

    [Fact]
    public async Task Removing_the_last_bitmap_drops_the_extension_and_its_autoclear_bit()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "64M");
        QemuImg.Run("bitmap", "--add", path, "b0").EnsureSuccess("qemu-img bitmap");
        QemuIo.RunChecked(path, "qcow2", "write 0 64k");
        await using (var graph = Qcow2Images.NewGraph())
        {
            var node = (await Qcow2Images.OpenAsync(graph, path)).Root!;
            await node.RemoveDirtyBitmapAsync("b0");
            Assert.Equal(-1, StoredBitmaps.DirectoryOffset(path));
            Assert.Equal(0UL, ImageFile.PeekBe64(path, ImageFile.AutoclearFeatures));
        }
        Qcow2Images.AssertCheckClean(path);
    }

    [Fact]
    public async Task A_new_persistent_bitmap_is_stored_at_close_and_refused_where_qemu_refuses_it()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "4T");
        string v2 = dir.File("v2.qcow2");
        QemuImg.Create("qcow2", v2, "1M", "compat=0.10");
        await using (var graph = Qcow2Images.NewGraph())
        {
            var node = (await Qcow2Images.OpenAsync(graph, path)).Root!;
            var e = await Assert.ThrowsAsync<BlockException>(() => node.AddDirtyBitmapAsync("big", 512, persistent: true).AsTask());
            Assert.Equal($"Can't make bitmap 'big' persistent in '{node.NodeName}': Too much space will be occupied by the bitmap. Use larger granularity", e.Message);
            e = await Assert.ThrowsAsync<BlockException>(() => node.AddDirtyBitmapAsync(new string('n', 1024), persistent: true).AsTask());
            Assert.EndsWith("Name length exceeds maximum (1023 characters)", e.Message);
            var b = await node.AddDirtyBitmapAsync("fine", 1024, persistent: true, disabled: true);
            b.SetDirty((4L << 40) - 1, 1);
            var v2Node = (await Qcow2Images.OpenAsync(graph, v2)).Root!;
            e = await Assert.ThrowsAsync<BlockException>(() => v2Node.AddDirtyBitmapAsync("x", persistent: true).AsTask());
            Assert.EndsWith("Cannot store dirty bitmaps in qcow2 v2 files", e.Message);
        }
        var stored = Assert.Single(StoredBitmaps.Read(path));
        Assert.Equal(("fine", 0u, 10, 8192u), (stored.Name, stored.Flags, stored.GranularityBits, stored.TableSize));
        Assert.Equal([((4L << 40) - 1024, 1024L)], stored.Dirty);
        Qcow2Images.AssertCheckClean(path);
    }

    [Fact]
    public async Task Resizing_resizes_the_bitmaps_as_qemu_does()
    {
        using var dir = new TempDirectory();
        string ours = MakeImage(dir, "ours.qcow2");
        QemuIo.RunChecked(ours, "qcow2", "write 60M 64k", "write 1M 1k");
        string theirs = dir.File("theirs.qcow2");
        File.Copy(ours, theirs);

        await using (var graph = Qcow2Images.NewGraph())
        {
            var backend = await Qcow2Images.OpenAsync(graph, ours);
            await backend.TruncateAsync(32 << 20);
        }
        await using (var graph = Qcow2Images.NewGraph())
        {
            var backend = await Qcow2Images.OpenAsync(graph, ours);
            await backend.TruncateAsync(200 << 20);
        }
        QemuImg.Run("resize", "--shrink", theirs, "32M").EnsureSuccess("qemu-img resize");
        QemuImg.Run("resize", theirs, "200M").EnsureSuccess("qemu-img resize");

        Qcow2Images.AssertSameBytes(File.ReadAllBytes(theirs), File.ReadAllBytes(ours), "image");
        Assert.Equal(StoredBitmaps.Expected(200 << 20, 16, (1 << 20, 1024)), StoredBitmaps.Read(ours)[0].Dirty);
        Qcow2Images.AssertCheckClean(ours);
    }

    [Fact]
    public async Task A_stale_extension_is_ignored_with_qemus_warning_and_dropped_by_the_first_read_write_open()
    {
        using var dir = new TempDirectory();
        string path = MakeImage(dir);
        QemuIo.RunChecked(path, "qcow2", "write 0 64k");
        // A program that does not know bitmaps cleared the autoclear bit: the extension no longer says anything.
        ImageFile.PokeBe64(path, ImageFile.AutoclearFeatures, 0);
        // Three tables, two data clusters and the directory are now leaks.
        Assert.Equal(6, (int)Qcow2Images.CheckJson(path)["leaks"]!);

        var warnings = new List<string>();
        await using (var graph = Qcow2Images.NewGraph())
        {
            graph.WarningRaised += warnings.Add;
            var node = (await Qcow2Images.OpenAsync(graph, path, readOnly: true)).Root!;
            Assert.Empty(node.DirtyBitmaps);
            Assert.Equal(6, (await node.Impl.CheckAsync(Drivers.CheckRepair.None)).Leaks);
        }
        Assert.Equal("a program lacking bitmap support modified this file, so all bitmaps are now considered inconsistent\n"
            + "Some clusters may be leaked, run 'qemu-img check -r' on the image file to fix.", Assert.Single(warnings));
        Assert.NotEqual(-1, StoredBitmaps.DirectoryOffset(path));

        await using (var graph = Qcow2Images.NewGraph())
        {
            var node = (await Qcow2Images.OpenAsync(graph, path)).Root!;
            Assert.Equal(-1, StoredBitmaps.DirectoryOffset(path));
            var repaired = await node.Impl.CheckAsync(Drivers.CheckRepair.All);
            Assert.Equal(6, repaired.LeaksFixed);
        }
        Qcow2Images.AssertCheckClean(path);
    }

    [Fact]
    public async Task An_autoclear_bit_without_the_extension_is_cleared_by_a_read_write_open()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "64M");
        ImageFile.PokeBe64(path, ImageFile.AutoclearFeatures, 1);
        await using (var graph = Qcow2Images.NewGraph())
        {
            var backend = await Qcow2Images.OpenAsync(graph, path);
            await backend.WriteAsync(0, new byte[65536]);
        }
        Assert.Equal(0UL, ImageFile.PeekBe64(path, ImageFile.AutoclearFeatures));
        Qcow2Images.AssertCheckClean(path);
    }

    /// <summary>What to poke into the image made by <see cref="MakeDamaged"/>: a field of the extension, of the first directory entry, or of its table.</summary>
    public static TheoryData<string, string, ulong> Damaged() => new()
    {
        { "reserved field", "reserved", 1 },
        { "no bitmaps", "nb", 0 },
        { "65536 bitmaps", "nb", 65536 },
        { "more bitmaps counted than stored", "nb", 3 },
        { "fewer bitmaps counted than stored", "nb", 1 },
        { "directory too small for an entry", "dirsize", 8 },
        { "directory larger than qemu allows", "dirsize", 0x4000000 },
        { "unaligned directory", "diroff+", 1 },
        { "directory past the end of the file", "diroff", 0x10000000 },
        { "unaligned table", "toff+", 1 },
        { "table at 2^63", "toff", 1UL << 63 },
        { "table larger than the disk needs", "tsize", 2 },
        { "empty table", "tsize", 0 },
        { "reserved flag", "flags", 8 },
        { "extra data compatible flag", "flags", 6 },
        { "unknown type", "type", 2 },
        { "granularity 256", "gbits", 8 },
        { "granularity 4 GiB", "gbits", 32 },
        { "extra data", "extra", 8 },
        { "reserved table entry bit", "tentry", 2 },
        { "table entry offset beyond 2^56", "tentry", 1UL << 56 },
        { "unaligned table entry", "tentry+", 0x100 },
        { "all-ones bit beside an offset", "tentry+", 1 },
        { "two bitmaps of one name", "dupname", 0 },
    };

    /// <summary>b0 (64 KiB, with a data cluster) and b1 (512 bytes), written by qemu; then <paramref name="field"/> poked.</summary>
    private static string MakeDamaged(TempDirectory dir, string field, ulong value)
    {
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "64M");
        QemuImg.Run("bitmap", "--add", path, "b0").EnsureSuccess("qemu-img bitmap");
        QemuImg.Run("bitmap", "--add", "-g", "512", path, "b1").EnsureSuccess("qemu-img bitmap");
        QemuIo.RunChecked(path, "qcow2", "write 0 1k");
        long ext = ImageFile.FindExtension(path, StoredBitmaps.Extension);
        long dir0 = (long)ImageFile.PeekBe64(path, ext + 16);
        long table = (long)ImageFile.PeekBe64(path, dir0);
        switch (field)
        {
            case "reserved": ImageFile.PokeBe32(path, ext + 4, (uint)value); break;
            case "nb": ImageFile.PokeBe32(path, ext, (uint)value); break;
            case "dirsize": ImageFile.PokeBe64(path, ext + 8, value); break;
            case "diroff": ImageFile.PokeBe64(path, ext + 16, value); break;
            case "diroff+": ImageFile.PokeBe64(path, ext + 16, (ulong)dir0 + value); break;
            case "toff+": ImageFile.PokeBe64(path, dir0, (ulong)table + value); break;
            case "toff": ImageFile.PokeBe64(path, dir0, value); break;
            case "tsize": ImageFile.PokeBe32(path, dir0 + 8, (uint)value); break;
            case "flags": ImageFile.PokeBe32(path, dir0 + 12, (uint)value); break;
            case "type": ImageFile.Poke(path, dir0 + 16, [(byte)value]); break;
            case "gbits": ImageFile.Poke(path, dir0 + 17, [(byte)value]); break;
            case "extra": ImageFile.PokeBe32(path, dir0 + 20, (uint)value); break;
            case "nsize": ImageFile.Poke(path, dir0 + 18, [0, (byte)value]); break;
            case "tentry": ImageFile.PokeBe64(path, table, value); break;
            case "tentry+": ImageFile.PokeBe64(path, table, ImageFile.PeekBe64(path, table) + value); break;
            case "dupname": ImageFile.Poke(path, dir0 + 32 + 24, "b0"u8); break;
        }
        return path;
    }

    [Theory]
    [MemberData(nameof(Damaged))]
    public async Task A_damaged_extension_directory_or_table_is_refused_with_qemus_message(string what, string field, ulong value)
    {
        using var dir = new TempDirectory();
        string path = MakeDamaged(dir, field, value);
        var qemu = QemuImg.Run("info", path);
        Assert.Equal(1, qemu.ExitCode);
        string prefix = $"qemu-img: Could not open '{path}': ";
        Assert.StartsWith(prefix, qemu.Stderr);
        string message = qemu.Stderr[prefix.Length..].TrimEnd('\n');

        foreach (bool readOnly in new[] { true, false })
        {
            await using var graph = Qcow2Images.NewGraph();
            var e = await Hostile.RefusedAsync(() => Qcow2Images.OpenAsync(graph, path, readOnly).AsTask());
            Assert.True(e.Message == message, $"{what}: the library said \"{e.Message}\", qemu \"{message}\"");
        }
    }

    [Fact]
    public async Task An_all_ones_table_entry_reads_as_a_full_cluster_of_set_bits_as_qemu_reads_it()
    {
        using var dir = new TempDirectory();
        string path = MakeDamaged(dir, "tentry", 1);
        Assert.Equal(0, QemuImg.Run("info", path).ExitCode);
        await using var graph = Qcow2Images.NewGraph();
        var node = (await Qcow2Images.OpenAsync(graph, path, readOnly: true)).Root!;
        Assert.Equal([(0L, Disk)], node.GetDirtyBitmap("b0").DirtyRanges());
    }

    [Fact]
    public async Task A_name_that_qemu_reads_shorter_is_read_the_same()
    {
        using var dir = new TempDirectory();
        string path = MakeDamaged(dir, "nsize", 1);
        Assert.Contains("name: b\n", QemuImg.Run("info", path).Stdout);
        await using var graph = Qcow2Images.NewGraph();
        var node = (await Qcow2Images.OpenAsync(graph, path, readOnly: true)).Root!;
        Assert.Equal(["b", "b1"], node.DirtyBitmaps.Select(b => b.Name));
    }

    [Fact]
    public async Task Check_counts_bitmap_clusters_and_fails_on_a_malformed_table_of_a_bitmap_in_use()
    {
        using var dir = new TempDirectory();
        string path = MakeDamaged(dir, "flags", 3);
        await using (var graph = Qcow2Images.NewGraph())
        {
            var node = (await Qcow2Images.OpenAsync(graph, path, readOnly: true)).Root!;
            var result = await node.Impl.CheckAsync(Drivers.CheckRepair.None);
            Assert.Equal((0L, 0L), (result.Corruptions ?? 0, result.Leaks ?? 0));
        }
        long table = (long)ImageFile.PeekBe64(path, (long)ImageFile.PeekBe64(path, ImageFile.FindExtension(path, StoredBitmaps.Extension) + 16));
        ImageFile.PokeBe64(path, table, 2);
        Assert.Contains("Check failed: Invalid argument", QemuImg.Check(path, "qcow2").Stderr);
        await using (var graph = Qcow2Images.NewGraph())
        {
            var node = (await Qcow2Images.OpenAsync(graph, path, readOnly: true)).Root!;
            var e = await Assert.ThrowsAsync<BlockException>(() => node.Impl.CheckAsync(Drivers.CheckRepair.None).AsTask());
            Assert.Equal("Invalid argument", e.Message);
        }
    }

    [Fact]
    public async Task A_write_landing_on_the_bitmap_directory_is_prevented_as_qemu_prevents_it()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "64M");
        QemuIo.RunChecked(path, "qcow2", "write 0 64k");
        QemuImg.Run("bitmap", "--add", path, "b0").EnsureSuccess("qemu-img bitmap");
        // Point the first guest cluster's L2 entry (COPIED, written in place) at the bitmap directory.
        long l1 = (long)ImageFile.PeekBe64(path, ImageFile.L1TableOffset);
        long l2 = (long)(ImageFile.PeekBe64(path, l1) & 0x00fffffffffffe00UL);
        long directory = StoredBitmaps.DirectoryOffset(path);
        ImageFile.PokeBe64(path, l2, (1UL << 63) | (ulong)directory);
        string twin = dir.File("twin.qcow2");
        File.Copy(path, twin);

        var qemu = QemuIo.Run(twin, "qcow2", "write 0 512");
        Assert.Contains("Preventing invalid write on metadata (overlaps with bitmap directory)", qemu.Stderr);

        await using var graph = Qcow2Images.NewGraph();
        var warnings = new List<string>();
        graph.MessagePrinted += warnings.Add;
        var backend = await Qcow2Images.OpenAsync(graph, path);
        var e = await Assert.ThrowsAsync<BlockException>(() => backend.WriteAsync(0, new byte[512]).AsTask());
        Assert.Equal(Errno.EIO, e.Errno);
        Assert.Contains("overlaps with bitmap directory", Assert.Single(warnings));
    }
}
