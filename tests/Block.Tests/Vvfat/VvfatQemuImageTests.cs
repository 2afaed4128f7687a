using Block.TestSupport;

namespace Block.Tests.Vvfat;

/// <summary>
/// The disk is QEMU 7.2's byte for byte where QEMU's is deterministic (FAT12 and FAT16, hard disk and floppy): MBR,
/// boot sector, both FATs, short names and their ~N tails, long-name entries, directory order, times, clusters and
/// file data. Both images are made from the same tree in the same second of the test. The one difference, the slack
/// after a file's end in its last cluster, is zeroed in QEMU's image first (<see cref="FatSlack"/>).
/// </summary>
public class VvfatQemuImageTests
{
    [Theory]
    [InlineData("fat:16:", 40 << 20, 300)]
    [InlineData("fat:", 40 << 20, 300)]
    [InlineData("fat:12:", 20 << 20, 300)]
    [InlineData("fat:floppy:", 0, 200)]
    [InlineData("fat:floppy:12:", 0, 60)]
    [InlineData("fat:floppy:16:", 0, 200)]
    public async Task Image_is_qemus_byte_for_byte(string prefix, int bigFileBytes, int manyFiles)
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        VvfatTree.Create(tree, bigFileBytes, manyFiles);
        string qemu = dir.File("qemu.raw");
        string ours = dir.File("ours.raw");
        VvfatTree.ConvertWithQemu(prefix + tree, qemu);
        await VvfatTree.ConvertWithBlockAsync(prefix + tree, ours);
        FatSlack.Clear(qemu, prefix.Contains("floppy", StringComparison.Ordinal) ? 0 : VvfatTree.HardDiskPartitionOffset);
        Assert.Empty(VvfatTree.Differences(qemu, ours));
    }

    [Fact]
    public async Task Short_names_of_every_printable_character_are_qemus()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        Directory.CreateDirectory(tree);
        for (char c = ' '; c < '\x7f'; c++)
        {
            if (c is '/' or '.')
                continue;
            File.WriteAllText(Path.Combine(tree, $"q{c}q"), c.ToString());
        }
        string qemu = dir.File("qemu.raw");
        string ours = dir.File("ours.raw");
        VvfatTree.ConvertWithQemu("fat:16:" + tree, qemu);
        await VvfatTree.ConvertWithBlockAsync("fat:16:" + tree, ours);
        FatSlack.Clear(qemu, VvfatTree.HardDiskPartitionOffset);
        Assert.Empty(VvfatTree.Differences(qemu, ours));
    }

    [Fact]
    public async Task Options_form_with_a_label_is_qemus_byte_for_byte()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        VvfatTree.Create(tree, 0, 10);
        string json = $$"""json:{"driver":"vvfat","dir":"{{tree}}","fat-type":12,"label":"my disk"}""";
        string qemu = dir.File("qemu.raw");
        string ours = dir.File("ours.raw");
        VvfatTree.ConvertWithQemu(json, qemu);
        await VvfatTree.ConvertWithBlockAsync(json, ours);
        FatSlack.Clear(qemu, VvfatTree.HardDiskPartitionOffset);
        Assert.Empty(VvfatTree.Differences(qemu, ours));
    }

    [Fact]
    public async Task Pre_1980_times_wrap_in_the_year_field_as_in_qemu()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        Directory.CreateDirectory(tree);
        string old = Path.Combine(tree, "old");
        File.WriteAllText(old, "old");
        File.SetLastWriteTimeUtc(old, new DateTime(1975, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        string qemu = dir.File("qemu.raw");
        string ours = dir.File("ours.raw");
        VvfatTree.ConvertWithQemu("fat:16:" + tree, qemu);
        await VvfatTree.ConvertWithBlockAsync("fat:16:" + tree, ours);
        FatSlack.Clear(qemu, VvfatTree.HardDiskPartitionOffset);
        Assert.Empty(VvfatTree.Differences(qemu, ours));
    }

    [Fact]
    public async Task Slack_after_a_file_is_zeroes_where_qemu_leaves_the_previous_read()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        Directory.CreateDirectory(tree);
        File.WriteAllText(Path.Combine(tree, "first"), "hello\n");
        string qemu = dir.File("qemu.raw");
        string ours = dir.File("ours.raw");
        VvfatTree.ConvertWithQemu("fat:16:" + tree, qemu);
        File.WriteAllText(Path.Combine(tree, "second"), "q\n");
        VvfatTree.ConvertWithQemu("fat:16:" + tree, qemu);
        await VvfatTree.ConvertWithBlockAsync("fat:16:" + tree, ours);
        // Whichever of the two readdir gives first, the second's cluster follows the first's.
        long data = VvfatTree.HardDiskPartitionOffset + (1 + 2 * 252 + 32) * 512;
        byte[] Cluster(string image, int index)
        {
            using var f = File.OpenRead(image);
            f.Position = data + index * 8192L;
            var b = new byte[8];
            f.ReadExactly(b);
            return b;
        }
        byte[] qemuSecond = Cluster(qemu, 1);
        byte[] oursSecond = Cluster(ours, 1);
        Assert.NotEqual(0, qemuSecond[2] | qemuSecond[3]);
        Assert.Equal(new byte[6], oursSecond[2..]);
        Assert.NotEqual(0, FatSlack.Clear(qemu, VvfatTree.HardDiskPartitionOffset));
        Assert.Empty(VvfatTree.Differences(qemu, ours));
    }

    [Fact]
    public async Task Dot_entries_carry_the_directory_and_dotdot_its_parent_as_in_qemu()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        string p = Path.Combine(tree, "p");
        string c = Path.Combine(p, "c");
        Directory.CreateDirectory(c);
        File.WriteAllText(Path.Combine(c, "f"), "f");
        // Modification times only: the access times stay today's, so neither reader's access moves them.
        Directory.SetLastWriteTimeUtc(c, new DateTime(2011, 1, 1, 1, 1, 2, DateTimeKind.Utc));
        Directory.SetLastWriteTimeUtc(p, new DateTime(2012, 2, 2, 2, 2, 4, DateTimeKind.Utc));
        Directory.SetLastWriteTimeUtc(tree, new DateTime(2013, 3, 3, 3, 3, 6, DateTimeKind.Utc));
        string qemu = dir.File("qemu.raw");
        string ours = dir.File("ours.raw");
        VvfatTree.ConvertWithQemu("fat:16:" + tree, qemu);
        await VvfatTree.ConvertWithBlockAsync("fat:16:" + tree, ours);
        FatSlack.Clear(qemu, VvfatTree.HardDiskPartitionOffset);
        Assert.Empty(VvfatTree.Differences(qemu, ours));
    }
}
