using Block.Graph;
using Block.TestSupport;

namespace Block.Tests.Vvfat;

/// <summary>Directories that cannot be presented, and files that cannot be read, give clear errors, never a crash or a hang.</summary>
public class VvfatBadInputTests
{
    private static async Task<BlockException> OpenFailsAsync(string filename)
    {
        await using var graph = new BlockGraph();
        return await Assert.ThrowsAnyAsync<BlockException>(async () =>
            await graph.OpenImageAsync(filename, new ImageOpenOptions { Format = "vvfat", ReadOnly = true }));
    }

    private static string QemuError(string filename)
    {
        var result = QemuImg.Run("info", "-f", "vvfat", filename);
        Assert.NotEqual(0, result.ExitCode);
        return result.Stderr;
    }

    [Fact]
    public async Task A_missing_directory_is_named_in_the_error()
    {
        using var dir = new TempDirectory();
        string missing = dir.File("missing");
        var e = await OpenFailsAsync("fat:16:" + missing);
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Equal($"Could not read directory {missing}: No such file or directory", e.Message);
        Assert.Contains($"Could not read directory {missing}", QemuError("fat:16:" + missing), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_instead_of_a_directory_is_refused()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("f"), "f");
        var e = await OpenFailsAsync("fat:16:" + dir.File("f"));
        Assert.Equal(Errno.ENOTDIR, e.Errno);
    }

    [Theory]
    [InlineData("fat:12:", 4020L * 8192, true)]
    [InlineData("fat:12:", 4021L * 8192, false)]
    [InlineData("fat:floppy:", 357L * 8192, true)]
    [InlineData("fat:floppy:", 358L * 8192, false)]
    [InlineData("fat:floppy:12:", 178L * 8192, false)]
    public async Task A_directory_too_large_for_the_fat_fails_at_qemus_boundary_with_its_message(string prefix, long fileBytes, bool fits)
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        Directory.CreateDirectory(tree);
        using (var f = File.Create(Path.Combine(tree, "f")))
            f.SetLength(fileBytes);
        var qemu = QemuImg.Run("info", "-f", "vvfat", prefix + tree);
        Assert.Equal(fits, qemu.ExitCode == 0);
        if (fits)
        {
            await using var graph = new BlockGraph();
            await using var backend = await graph.OpenImageAsync(prefix + tree, new ImageOpenOptions { Format = "vvfat", ReadOnly = true });
            return;
        }
        var e = await OpenFailsAsync(prefix + tree);
        Assert.Equal(Errno.ENOSPC, e.Errno);
        Assert.StartsWith("Directory does not fit in FAT12 (capacity ", e.Message, StringComparison.Ordinal);
        Assert.Contains(e.Message, qemu.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_root_directory_of_more_than_512_entries_is_refused_in_fat16()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        Directory.CreateDirectory(tree);
        // 171 names of three entries each, and the label: 514 entries.
        for (int i = 1; i <= 171; i++)
            File.WriteAllText(Path.Combine(tree, $"file_with_long_name_{i}"), "x");
        var e = await OpenFailsAsync("fat:16:" + tree);
        Assert.Contains("Too many entries in root directory", e.Message, StringComparison.Ordinal);
        Assert.Contains("Too many entries in root directory", QemuError("fat:16:" + tree), StringComparison.Ordinal);
        File.Delete(Path.Combine(tree, "file_with_long_name_171"));
        await using var graph = new BlockGraph();
        await using var backend = await graph.OpenImageAsync("fat:16:" + tree, new ImageOpenOptions { Format = "vvfat", ReadOnly = true });
    }

    [Fact]
    public async Task An_unreadable_file_fails_the_reads_of_its_clusters_naming_it_and_nothing_else()
    {
        // Root reads anything on a disk file, so the unreadable file is a kernel one root cannot read either: a
        // write-only sysfs attribute (open for reading: EACCES), reached through a symbolic link as QEMU follows them.
        const string writeOnly = "/sys/bus/pci/rescan";
        Assert.True(File.Exists(writeOnly), $"{writeOnly} is needed to make a file root cannot read");
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        Directory.CreateDirectory(tree);
        File.WriteAllText(Path.Combine(tree, "readable"), "fine");
        File.CreateSymbolicLink(Path.Combine(tree, "unreadable"), writeOnly);

        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync("fat:16:" + tree, new ImageOpenOptions { Format = "vvfat", ReadOnly = true });
        // Clusters 2 and 3 in readdir order; find the unreadable one through the root directory.
        var root = BlockIo.Read(backend, VvfatTree.HardDiskPartitionOffset + (1 + 2 * 252) * 512, 512);
        int cluster = -1;
        for (int at = 0; at < 512; at += 32)
        {
            if (root[at + 11] != 0x0f && System.Text.Encoding.ASCII.GetString(root, at, 11) == "UNREAD~1   ")
                cluster = BitConverter.ToUInt16(root, at + 26);
        }
        Assert.True(cluster >= 2);
        long offset = VvfatTree.HardDiskPartitionOffset + (1 + 2 * 252 + 32) * 512 + (cluster - 2) * 8192L;
        var e = await Assert.ThrowsAnyAsync<BlockException>(async () => await backend.ReadAsync(offset, new byte[4096]));
        Assert.Equal(Errno.EACCES, e.Errno);
        Assert.Contains(Path.Combine(tree, "unreadable"), e.Message, StringComparison.Ordinal);
        // The metadata and the other file still read.
        long other = VvfatTree.HardDiskPartitionOffset + (1 + 2 * 252 + 32) * 512 + (cluster == 2 ? 1 : 0) * 8192L;
        Assert.Equal("fine"u8.ToArray(), BlockIo.Read(backend, other, 4));
    }

    [Fact]
    public async Task A_file_removed_after_open_fails_its_reads_naming_it()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        Directory.CreateDirectory(tree);
        string file = Path.Combine(tree, "gone");
        File.WriteAllText(file, "soon gone");
        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync("fat:16:" + tree, new ImageOpenOptions { Format = "vvfat", ReadOnly = true });
        File.Delete(file);
        long cluster2 = VvfatTree.HardDiskPartitionOffset + (1 + 2 * 252 + 32) * 512;
        var e = await Assert.ThrowsAnyAsync<BlockException>(async () => await backend.ReadAsync(cluster2, new byte[512]));
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Contains(file, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_symbolic_link_loop_of_directories_is_refused()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        Directory.CreateDirectory(Path.Combine(tree, "inner"));
        Directory.CreateSymbolicLink(Path.Combine(tree, "inner", "back"), tree);
        var e = await OpenFailsAsync("fat:16:" + tree);
        Assert.Equal(Errno.ELOOP, e.Errno);
        Assert.Contains("symbolic link loop", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dangling_symbolic_links_are_left_out_as_qemu_leaves_them_out()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        Directory.CreateDirectory(tree);
        File.WriteAllText(Path.Combine(tree, "kept"), "kept");
        File.CreateSymbolicLink(Path.Combine(tree, "dangling"), dir.File("nowhere"));
        string qemu = dir.File("qemu.raw");
        string ours = dir.File("ours.raw");
        VvfatTree.ConvertWithQemu("fat:16:" + tree, qemu);
        await VvfatTree.ConvertWithBlockAsync("fat:16:" + tree, ours);
        FatSlack.Clear(qemu, VvfatTree.HardDiskPartitionOffset);
        Assert.Empty(VvfatTree.Differences(qemu, ours));
    }
}
