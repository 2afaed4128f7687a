using Block.Graph;
using Block.TestSupport;

namespace Block.Tests.Vvfat;

/// <summary>
/// <c>rw</c>: a change made to the disk as a guest makes it (mtools on a raw copy, then the differing sectors written
/// in disk order) reaches the host directory, which then holds what mtools extracts from the changed copy. Where QEMU
/// 7.2 commits the change, its host directory is the same as ours.
/// </summary>
/// <remarks>
/// QEMU 7.2 does not commit every case (checked with these same writes through <c>qemu-io</c>, in disk order and in
/// reverse order): a deleted file, a file moved to another directory and a removed directory stay on the host
/// (removing a directory prints "cluster 0 used more than once"); a file that grows keeps its old size (growing past
/// its cluster aborts qemu-io on an assertion in vvfat.c), and shrinking a file or renaming a directory abort it too.
/// Those cases are checked against mtools' extraction only; we commit them.
/// </remarks>
public class VvfatRwOracleTests
{
    private const long HardDisk = VvfatTree.HardDiskPartitionOffset;

    /// <summary>Makes <paramref name="change"/> to the volume in <paramref name="image"/> with mtools.</summary>
    private static void Change(string image, long offset, string change, TempDirectory dir)
    {
        string Data(string name, byte[] bytes)
        {
            string path = dir.File(name);
            File.WriteAllBytes(path, bytes);
            return path;
        }
        byte[] Random(int length, int seed)
        {
            var bytes = new byte[length];
            new Random(seed).NextBytes(bytes);
            return bytes;
        }
        switch (change)
        {
            case "modify":
                Mtools.Change(image, offset, "mcopy", "-o", Data("x", "HELLO\n"u8.ToArray()), "::/a.txt");
                break;
            case "modify-big":
                Mtools.Change(image, offset, "mcopy", "-o", Data("x", Random(20000, 3)), "::/big.bin");
                break;
            case "grow":
                Mtools.Change(image, offset, "mcopy", "-o", Data("x", Random(30000, 1)), "::/a.txt");
                break;
            case "shrink":
                Mtools.Change(image, offset, "mcopy", "-o", Data("x", "abc"u8.ToArray()), "::/big.bin");
                break;
            case "create":
                Mtools.Change(image, offset, "mcopy", Data("x", Random(9000, 2)), "::/A new file with a long name.txt");
                break;
            case "create-in-new-dir":
                Mtools.Change(image, offset, "mmd", "::/New Folder");
                Mtools.Change(image, offset, "mcopy", Data("x", "inside\n"u8.ToArray()), "::/New Folder/inside.txt");
                break;
            case "delete":
                Mtools.Change(image, offset, "mdel", "::/b.txt");
                break;
            case "rename":
                Mtools.Change(image, offset, "mren", "::/b.txt", "::/b renamed with a long name.txt");
                break;
            case "move":
                Mtools.Change(image, offset, "mmove", "::/b.txt", "::/sub/b.txt");
                break;
            case "delete-dir":
                Mtools.Change(image, offset, "mdel", "::/sub/c.txt");
                Mtools.Change(image, offset, "mrd", "::/sub");
                break;
            case "delete-empty-dir":
                Mtools.Change(image, offset, "mrd", "::/empty dir");
                break;
            case "rename-dir":
                Mtools.Change(image, offset, "mren", "::/sub", "::/sub renamed");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(change));
        }
    }

    [Theory]
    [InlineData("fat:16:", HardDisk, "modify", true)]
    [InlineData("fat:16:", HardDisk, "modify-big", true)]
    [InlineData("fat:16:", HardDisk, "grow", false)]
    [InlineData("fat:16:", HardDisk, "create", true)]
    [InlineData("fat:16:", HardDisk, "create-in-new-dir", true)]
    [InlineData("fat:16:", HardDisk, "rename", true)]
    [InlineData("fat:16:", HardDisk, "shrink", false)]
    [InlineData("fat:16:", HardDisk, "delete", false)]
    [InlineData("fat:16:", HardDisk, "move", false)]
    [InlineData("fat:16:", HardDisk, "delete-dir", false)]
    [InlineData("fat:16:", HardDisk, "delete-empty-dir", false)]
    [InlineData("fat:16:", HardDisk, "rename-dir", false)]
    [InlineData("fat:floppy:12:", 0, "modify", true)]
    [InlineData("fat:floppy:12:", 0, "create", true)]
    [InlineData("fat:floppy:12:", 0, "create-in-new-dir", true)]
    [InlineData("fat:floppy:12:", 0, "delete", false)]
    [InlineData("fat:floppy:12:", 0, "shrink", false)]
    [InlineData("fat:12:", HardDisk, "grow", false)]
    [InlineData("fat:12:", HardDisk, "move", false)]
    [InlineData("fat:32:", HardDisk, "create-in-new-dir", false)]
    [InlineData("fat:32:", HardDisk, "delete", false)]
    [InlineData("fat:32:", HardDisk, "rename-dir", false)]
    [InlineData("fat:32:", HardDisk, "shrink", false)]
    public async Task A_change_reaches_the_host_directory_as_mtools_made_it(string prefix, long offset, string change, bool qemuCommitsIt)
    {
        using var dir = new TempDirectory();
        string rwPrefix = "fat:rw:" + prefix["fat:".Length..];

        string ours = dir.File("ours");
        VvfatRw.CreateTree(ours);
        string before = dir.File("ours-before.raw");
        await VvfatTree.ConvertWithBlockAsync(prefix + ours, before);
        string after = dir.File("ours-after.raw");
        File.Copy(before, after);
        Change(after, offset, change, dir);
        string expected = dir.File("expected");
        Mtools.ExtractAll(after, offset, expected);

        await VvfatRw.WriteWithBlockAsync(rwPrefix + ours, VvfatRw.ChangedSectors(before, after));
        Assert.Equal(VvfatRw.Listing(expected), VvfatRw.Listing(ours));
        // Nothing was written beside the directory.
        Assert.All(Directory.EnumerateFileSystemEntries(dir.Path), p => Assert.Contains(Path.GetFileName(p), new[] { "expected", "ours", "ours-after.raw", "ours-before.raw", "x" }));

        if (!qemuCommitsIt)
            return;
        string qemu = dir.File("qemu");
        VvfatRw.CreateTree(qemu);
        string qemuBefore = dir.File("qemu-before.raw");
        VvfatTree.ConvertWithQemu(prefix + qemu, qemuBefore);
        string qemuAfter = dir.File("qemu-after.raw");
        File.Copy(qemuBefore, qemuAfter);
        Change(qemuAfter, offset, change, dir);
        VvfatRw.WriteWithQemu(rwPrefix + qemu, VvfatRw.ChangedSectors(qemuBefore, qemuAfter), dir);
        Assert.Equal(VvfatRw.Listing(qemu), VvfatRw.Listing(ours));
    }

    [Theory]
    [InlineData("create-in-new-dir")]
    [InlineData("rename")]
    public void Blk_io_and_qemu_io_give_the_same_output_and_directory_for_the_same_writes(string change)
    {
        using var dir = new TempDirectory();
        List<string> Commands(string tree, string tool)
        {
            VvfatRw.CreateTree(tree);
            string before = dir.File(tool + "-before.raw");
            if (tool == "qemu")
                VvfatTree.ConvertWithQemu("fat:16:" + tree, before);
            else
                BlkRunner.Run("convert", "-f", "vvfat", "-O", "raw", "fat:16:" + tree, before).EnsureSuccess("blk convert");
            string after = dir.File(tool + "-after.raw");
            File.Copy(before, after);
            Change(after, HardDisk, change, dir);
            return VvfatRw.WriteCommands(VvfatRw.ChangedSectors(before, after), dir, tool + "-run");
        }
        string qemu = dir.File("qemu");
        string ours = dir.File("ours");
        var qemuResult = QemuIo.Run("fat:rw:16:" + qemu, "vvfat", [.. Commands(qemu, "qemu")]);
        var commands = Commands(ours, "blk");
        var blkResult = BlkRunner.Run(["io", "-f", "vvfat", .. commands.SelectMany(c => new[] { "-c", c }), "fat:rw:16:" + ours]);
        Assert.Equal(0, blkResult.ExitCode);
        Assert.Equal(BlkRunner.Normalize(qemuResult.Stdout).Replace(dir.File("qemu-run"), "RUN", StringComparison.Ordinal),
            BlkRunner.Normalize(blkResult.Stdout).Replace(dir.File("blk-run"), "RUN", StringComparison.Ordinal));
        Assert.Equal(VvfatRw.Listing(qemu), VvfatRw.Listing(ours));
    }

    [Fact]
    public async Task After_a_commit_the_disk_still_reads_as_written_and_takes_further_changes()
    {
        using var dir = new TempDirectory();
        string tree = dir.File("tree");
        VvfatRw.CreateTree(tree);
        string image = dir.File("image.raw");
        await VvfatTree.ConvertWithBlockAsync("fat:16:" + tree, image);

        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync("fat:rw:16:" + tree, new ImageOpenOptions { Format = "vvfat" });
        string[] steps = ["create", "modify", "move", "rename-dir", "shrink", "create-in-new-dir", "delete-empty-dir", "grow"];
        foreach (string step in steps)
        {
            // The change is made to the disk as the node reads it now, so each step starts from the last commit's layout.
            string now = dir.File("now.raw");
            await ReadWholeAsync(backend, now);
            string changed = dir.File("changed.raw");
            File.Copy(now, changed, overwrite: true);
            Change(changed, HardDisk, step, dir);
            foreach (var (offset, data) in VvfatRw.ChangedSectors(now, changed))
                await backend.WriteAsync(offset, data);

            string expected = dir.File("expected-" + step);
            Mtools.ExtractAll(changed, HardDisk, expected);
            Assert.Equal(VvfatRw.Listing(expected), VvfatRw.Listing(tree));
            // The node's view after the commit is still the guest's volume: mtools reads the same tree from it.
            string reread = dir.File("reread.raw");
            await ReadWholeAsync(backend, reread);
            string extracted = dir.File("extracted-" + step);
            Mtools.ExtractAll(reread, HardDisk, extracted);
            Assert.Equal(VvfatRw.Listing(expected), VvfatRw.Listing(extracted));
        }
    }

    private static async Task ReadWholeAsync(BlockBackend backend, string output)
    {
        var buffer = new byte[1 << 20];
        await using var file = new FileStream(output, FileMode.Create, FileAccess.Write);
        for (long offset = 0; offset < backend.Length; offset += buffer.Length)
        {
            int n = (int)Math.Min(buffer.Length, backend.Length - offset);
            await backend.ReadAsync(offset, buffer.AsMemory(0, n));
            await file.WriteAsync(buffer.AsMemory(0, n));
        }
    }
}
