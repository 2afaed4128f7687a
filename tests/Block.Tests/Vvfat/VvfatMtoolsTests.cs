using Block.TestSupport;

namespace Block.Tests.Vvfat;

/// <summary>
/// mtools, a FAT implementation that is not QEMU's, reads our disks: it lists every entry as it lists QEMU's, and
/// extracts every file and directory with the source's bytes. FAT32, where QEMU's disk is unreadable, included.
/// </summary>
/// <remarks>
/// Not the FAT16 floppy: QEMU's has 357 clusters, so every FAT driver takes it for FAT12 by its cluster count and mtools
/// refuses it ("Cluster # at 29 too big"); ours is QEMU's byte for byte (<see cref="VvfatQemuImageTests"/>).
/// </remarks>
public class VvfatMtoolsTests
{
    [Theory]
    [InlineData("fat:16:", VvfatTree.HardDiskPartitionOffset, 30 << 20, 300)]
    [InlineData("fat:12:", VvfatTree.HardDiskPartitionOffset, 20 << 20, 300)]
    [InlineData("fat:floppy:", 0, 0, 200)]
    [InlineData("fat:floppy:12:", 0, 0, 60)]
    public async Task Listing_is_qemus_and_every_file_comes_back(string prefix, long offset, int bigFileBytes, int manyFiles)
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        VvfatTree.Create(tree, bigFileBytes, manyFiles, mtoolsSafe: true);
        string qemu = dir.File("qemu.raw");
        string ours = dir.File("ours.raw");
        VvfatTree.ConvertWithQemu(prefix + tree, qemu);
        await VvfatTree.ConvertWithBlockAsync(prefix + tree, ours);

        Assert.Equal(Mtools.ListAll(qemu, offset), Mtools.ListAll(ours, offset));
        string extracted = dir.File("extracted");
        Mtools.ExtractAll(ours, offset, extracted);
        VvfatTree.AssertSameTree(tree, extracted);
    }

    [Fact]
    public async Task Fat32_lists_the_entries_of_fat16_and_every_file_comes_back()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        VvfatTree.Create(tree, 40 << 20, 300, mtoolsSafe: true);
        string fat16 = dir.File("fat16.raw");
        string fat32 = dir.File("fat32.raw");
        await VvfatTree.ConvertWithBlockAsync("fat:16:" + tree, fat16);
        await VvfatTree.ConvertWithBlockAsync("fat:32:" + tree, fat32);

        // The same entries, names, sizes and times; only the free space differs (4 KiB clusters, another FAT size).
        static string Entries(string listing) => string.Join('\n', listing.Split('\n').Where(l => !l.Contains("bytes free", StringComparison.Ordinal)));
        Assert.Equal(Entries(Mtools.ListAll(fat16, VvfatTree.HardDiskPartitionOffset)), Entries(Mtools.ListAll(fat32, VvfatTree.HardDiskPartitionOffset)));
        string extracted = dir.File("extracted");
        Mtools.ExtractAll(fat32, VvfatTree.HardDiskPartitionOffset, extracted);
        VvfatTree.AssertSameTree(tree, extracted);
    }

    [Fact]
    public async Task Fat32_root_directory_of_many_clusters_is_read_back()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        Directory.CreateDirectory(tree);
        // 700 entries of three directory entries each: more than FAT16's 512-entry root could hold, 17 clusters of 4 KiB.
        for (int i = 0; i < 700; i++)
            File.WriteAllText(Path.Combine(tree, $"root entry with a long name {i:D4}"), i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        string fat32 = dir.File("fat32.raw");
        await VvfatTree.ConvertWithBlockAsync("fat:32:" + tree, fat32);
        string extracted = dir.File("extracted");
        Mtools.ExtractAll(fat32, VvfatTree.HardDiskPartitionOffset, extracted);
        VvfatTree.AssertSameTree(tree, extracted);
    }
}
