using System.Buffers.Binary;
using System.Text;
using Block.Drivers.Vvfat;
using Block.Graph;
using Block.TestSupport;

namespace Block.Tests.Vvfat;

/// <summary>
/// <c>rw</c> against hostile and half-done volumes: chains that loop or leave the volume, clusters in two chains,
/// names that would leave the directory, and the states between a guest's writes are not committed, never hang or
/// crash, and commit once the volume is consistent again; the host directory is the only place written.
/// </summary>
public class VvfatRwBadInputTests
{
    // The FAT16 hard disk: partition at sector 63, one reserved sector, two FATs of 252 sectors, 32 root sectors.
    private const long Fat0 = VvfatTree.HardDiskPartitionOffset + 512;
    private const long Root = VvfatTree.HardDiskPartitionOffset + (1 + 2 * 252) * 512;
    private const long Cluster2 = Root + 32 * 512;

    private sealed class RwDisk : IAsyncDisposable
    {
        private readonly BlockGraph _graph;

        private RwDisk(BlockGraph graph, BlockBackend backend)
        {
            _graph = graph;
            Backend = backend;
        }

        public BlockBackend Backend { get; }

        public string? Pending => ((VvfatNodeDriver)Backend.Root!.Impl).PendingReason;

        public int Commits => ((VvfatNodeDriver)Backend.Root!.Impl).Commits;

        public static async Task<RwDisk> OpenAsync(string tree)
        {
            var graph = new BlockGraph();
            var backend = await graph.OpenImageAsync("fat:rw:16:" + tree, new ImageOpenOptions { Format = "vvfat" });
            return new RwDisk(graph, backend);
        }

        /// <summary>The byte offset of the short entry named <paramref name="shortName"/> (11 bytes) in the root directory.</summary>
        public long Entry(string shortName)
        {
            byte[] root = BlockIo.Read(Backend, Root, 32 * 512);
            for (int at = 0; at < root.Length; at += 32)
            {
                if (root.AsSpan(at, 11).SequenceEqual(Encoding.ASCII.GetBytes(shortName)))
                    return Root + at;
            }
            throw new InvalidOperationException($"{shortName} is not in the root directory");
        }

        public uint FirstCluster(string shortName) => BinaryPrimitives.ReadUInt16LittleEndian(BlockIo.Read(Backend, Entry(shortName) + 26, 2));

        /// <summary>Changes the sector holding <paramref name="offset"/> with <paramref name="change"/> and writes it back.</summary>
        public async Task PatchAsync(long offset, Action<Span<byte>> change)
        {
            long sector = offset / 512 * 512;
            byte[] bytes = BlockIo.Read(Backend, sector, 512);
            change(bytes.AsSpan((int)(offset - sector)));
            await Backend.WriteAsync(sector, bytes);
        }

        public Task SetFatAsync(uint cluster, ushort value) =>
            PatchAsync(Fat0 + cluster * 2, s => BinaryPrimitives.WriteUInt16LittleEndian(s, value));

        public void ReadsWhole()
        {
            for (long offset = 0; offset < Backend.Length; offset += 1 << 20)
                BlockIo.Read(Backend, offset, (int)Math.Min(1 << 20, Backend.Length - offset));
        }

        public async ValueTask DisposeAsync() => await _graph.DisposeAsync();
    }

    private static (TempDirectory Dir, string Tree, string Listing) Tree()
    {
        var dir = new TempDirectory();
        string tree = dir.File("tree");
        VvfatRw.CreateTree(tree);
        return (dir, tree, VvfatRw.Listing(tree));
    }

    [Fact]
    public async Task A_looping_chain_waits_and_the_fix_commits()
    {
        var (dir, tree, listing) = Tree();
        using var _ = dir;
        await using var disk = await RwDisk.OpenAsync(tree);
        uint big = disk.FirstCluster("BIG     BIN");
        // big.bin is three clusters; the last now points back at the first.
        await disk.SetFatAsync(big + 2, (ushort)big);
        Assert.Contains("loops", disk.Pending, StringComparison.Ordinal);
        byte[] data = Patterns.Fill(8192, 0x42);
        await disk.Backend.WriteAsync(Cluster2 + (big - 2) * 8192L, data);
        Assert.Contains("loops", disk.Pending, StringComparison.Ordinal);
        disk.ReadsWhole();
        Assert.Equal(listing, VvfatRw.Listing(tree));

        await disk.SetFatAsync(big + 2, 0xffff);
        Assert.Null(disk.Pending);
        byte[] host = File.ReadAllBytes(Path.Combine(tree, "big.bin"));
        Assert.Equal(data, host[..8192]);
        Assert.Equal(20000, host.Length);
    }

    [Theory]
    [InlineData(0xfff0, "outside the volume")]
    [InlineData(1, "outside the volume")]
    [InlineData(0, "is 6 bytes but has 0 clusters")]
    public async Task A_first_cluster_out_of_range_is_not_committed(int cluster, string problem)
    {
        var (dir, tree, listing) = Tree();
        using var _ = dir;
        await using var disk = await RwDisk.OpenAsync(tree);
        long entry = disk.Entry("A       TXT");
        await disk.PatchAsync(entry + 26, s => BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)cluster));
        Assert.Contains(problem, disk.Pending, StringComparison.Ordinal);
        disk.ReadsWhole();
        Assert.Equal(listing, VvfatRw.Listing(tree));
    }

    [Fact]
    public async Task A_cluster_in_two_chains_is_not_committed()
    {
        var (dir, tree, listing) = Tree();
        using var _ = dir;
        await using var disk = await RwDisk.OpenAsync(tree);
        uint b = disk.FirstCluster("B       TXT");
        long entry = disk.Entry("A       TXT");
        await disk.PatchAsync(entry + 26, s => BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)b));
        Assert.Contains("in two chains", disk.Pending, StringComparison.Ordinal);
        Assert.Equal(listing, VvfatRw.Listing(tree));
    }

    [Theory]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("../escaped")]
    [InlineData("/etc/x")]
    [InlineData("a/b")]
    public async Task A_long_name_that_would_leave_the_directory_is_refused(string name)
    {
        var (dir, tree, listing) = Tree();
        using var _ = dir;
        await using var disk = await RwDisk.OpenAsync(tree);
        long entry = disk.Entry("B       TXT");
        // b.txt's one long-name entry, just before its short entry, now spells the hostile name.
        byte[] shortName = BlockIo.Read(disk.Backend, entry, 11);
        await disk.PatchAsync(entry - 32, s => FatDirectoryEntries.WriteLong(s[..32], name, shortName));
        Assert.Contains("is not a name the host directory can take", disk.Pending, StringComparison.Ordinal);
        disk.ReadsWhole();
        Assert.Equal(listing, VvfatRw.Listing(tree));
        Assert.Equal([tree], Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public async Task The_states_between_a_guests_writes_wait_and_the_last_one_commits()
    {
        var (dir, tree, listing) = Tree();
        using var _ = dir;
        string before = dir.File("before.raw");
        await VvfatTree.ConvertWithBlockAsync("fat:16:" + tree, before);
        string after = dir.File("after.raw");
        File.Copy(before, after);
        Mtools.Change(after, VvfatTree.HardDiskPartitionOffset, "mmove", "::/b.txt", "::/sub/b.txt");
        var runs = VvfatRw.ChangedSectors(before, after);
        // The root directory first (b.txt gone from it), then sub's cluster (b.txt in it).
        Assert.Equal(2, runs.Count);
        await using var disk = await RwDisk.OpenAsync(tree);
        await disk.Backend.WriteAsync(runs[0].Offset, runs[0].Data);
        // Committing now would delete b.txt; its clusters are lost instead, which is not consistent.
        Assert.Contains("allocated but no file or directory uses it", disk.Pending, StringComparison.Ordinal);
        Assert.Equal(listing, VvfatRw.Listing(tree));
        Assert.Equal(0, disk.Commits);
        await disk.Backend.WriteAsync(runs[1].Offset, runs[1].Data);
        Assert.Null(disk.Pending);
        Assert.Equal(1, disk.Commits);
        Assert.False(File.Exists(Path.Combine(tree, "b.txt")));
        // mmove writes the moved entry without its long name, so FAT drivers (and mtools) show the 8.3 name.
        Assert.Equal("world\n", File.ReadAllText(Path.Combine(tree, "sub", "B.TXT")));
    }

    [Fact]
    public async Task Random_sectors_over_the_fats_and_root_never_crash_nor_write_outside()
    {
        var (dir, tree, _) = Tree();
        using var __ = dir;
        await using var disk = await RwDisk.OpenAsync(tree);
        var random = new Random(1818);
        var sector = new byte[512];
        for (int i = 0; i < 200; i++)
        {
            long offset = Fat0 + random.NextInt64((Cluster2 + 4 * 8192 - Fat0) / 512) * 512;
            random.NextBytes(sector);
            try
            {
                await disk.Backend.WriteAsync(offset, sector);
            }
            catch (BlockException e)
            {
                // A commit the host refused is the one error allowed; it must say so.
                Assert.Contains("commit", e.Message, StringComparison.Ordinal);
            }
        }
        disk.ReadsWhole();
        Assert.Equal([tree], Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public async Task The_mbr_and_boot_sector_are_protected_as_in_qemu()
    {
        var (dir, tree, _) = Tree();
        using var _ = dir;
        await using var disk = await RwDisk.OpenAsync(tree);
        foreach (long offset in new[] { 0L, VvfatTree.HardDiskPartitionOffset })
        {
            var e = await Assert.ThrowsAnyAsync<BlockException>(async () => await disk.Backend.WriteAsync(offset, new byte[512]));
            Assert.Equal(Errno.EPERM, e.Errno);
        }
        var qemu = QemuIo.Run("fat:rw:16:" + tree, "vvfat", "write 0 512", $"write {VvfatTree.HardDiskPartitionOffset} 512");
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Count(qemu.Stdout + qemu.Stderr, "write failed: Operation not permitted"));
    }

    [Fact]
    public async Task A_name_taken_on_the_host_since_open_is_an_error_not_an_overwrite()
    {
        var (dir, tree, _) = Tree();
        using var _ = dir;
        string before = dir.File("before.raw");
        await VvfatTree.ConvertWithBlockAsync("fat:16:" + tree, before);
        string after = dir.File("after.raw");
        File.Copy(before, after);
        Mtools.Change(after, VvfatTree.HardDiskPartitionOffset, "mren", "::/b.txt", "::/taken name.txt");
        await using var disk = await RwDisk.OpenAsync(tree);
        File.WriteAllText(Path.Combine(tree, "taken name.txt"), "the host's\n");
        var e = await Assert.ThrowsAnyAsync<BlockException>(async () =>
        {
            foreach (var (offset, data) in VvfatRw.ChangedSectors(before, after))
                await disk.Backend.WriteAsync(offset, data);
        });
        Assert.Equal(Errno.EEXIST, e.Errno);
        Assert.Contains("taken name.txt", e.Message, StringComparison.Ordinal);
        Assert.Equal("the host's\n", File.ReadAllText(Path.Combine(tree, "taken name.txt")));
        // Refused before anything changed: b.txt is where it was, and nothing is set aside.
        Assert.Equal("world\n", File.ReadAllText(Path.Combine(tree, "b.txt")));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(tree), p => Path.GetFileName(p).StartsWith(".vvfat", StringComparison.Ordinal));
        var again = await Assert.ThrowsAnyAsync<BlockException>(async () => await disk.Backend.WriteAsync(Cluster2, new byte[512]));
        Assert.Contains("a commit failed", again.Message, StringComparison.Ordinal);
    }
}
