using System.Buffers.Binary;
using System.Text;
using Block.Interop;

namespace Block.Drivers.Vvfat;

/// <summary>
/// The FAT disk built from a host directory: every metadata byte (MBR, boot sectors, FATs, directories) in memory,
/// and where each file's clusters lie, so that a read is copies from memory and reads of host files.
/// </summary>
/// <remarks>
/// Clusters are given as QEMU 7.2 gives them, breadth first: the root's entries in readdir order, each directory
/// taking its clusters (as many as its entries need, at least one) when its turn comes and appending its own entries
/// to the list, each file taking ceil(size / cluster) contiguous clusters, an empty file none. Memory is bounded by
/// the volume: a directory takes at most 65536 entries (2 MiB), and the scan stops as soon as the clusters given
/// pass <see cref="FatGeometry.UsableClusters"/>.
/// </remarks>
internal sealed class VvfatVolume
{
    private const int MaxDirectoryEntries = 65536;
    private static readonly byte[] s_dot = Encoding.ASCII.GetBytes(".          ");
    private static readonly byte[] s_dotDot = Encoding.ASCII.GetBytes("..         ");

    private readonly List<VvfatExtent> _extents = [];
    private uint _nextCluster = 2;

    private VvfatVolume(FatGeometry geometry, byte[] label, string directory, byte[]? fat = null)
    {
        Geometry = geometry;
        Label = label;
        Directory = directory;
        Fat = fat ?? new byte[geometry.SectorsPerFat * FatGeometry.SectorSize];
        Root = new HostEntry(directory, string.Empty, isDirectory: true, 0, default, parent: null);
    }

    /// <summary>The disk's shape.</summary>
    public FatGeometry Geometry { get; }

    /// <summary>The volume label, 11 bytes.</summary>
    public byte[] Label { get; }

    /// <summary>The host directory.</summary>
    public string Directory { get; }

    /// <summary>One FAT (both copies are the same).</summary>
    public byte[] Fat { get; }

    /// <summary>The host directory's entry, whose children are the tree the volume holds.</summary>
    public HostEntry Root { get; private set; }

    /// <summary>What the disk holds, by offset, without gaps' zeroes; sorted and not overlapping.</summary>
    public IReadOnlyList<VvfatExtent> Extents => _extents;

    /// <summary>Clusters given to files and directories.</summary>
    public long UsedClusters => _nextCluster - 2;

    /// <summary>Scans <paramref name="directory"/> and lays the volume out.</summary>
    /// <exception cref="BlockException">The directory cannot be read, or does not fit in the volume.</exception>
    public static VvfatVolume Build(string directory, FatGeometry geometry, byte[] label)
    {
        var volume = new VvfatVolume(geometry, label, directory);
        volume.Lay();
        return volume;
    }

    /// <summary>
    /// The volume after a commit: the guest's own layout, now backed by the host. <paramref name="metadata"/> is the
    /// volume from its boot sector to the first cluster as the guest left it (reserved sectors, FATs, FAT12/16 root
    /// directory); <paramref name="directoryClusters"/> the clusters of the other directories, as the guest left them;
    /// <paramref name="files"/> each host file with the clusters that hold it, in order.
    /// </summary>
    public static VvfatVolume Rebuilt(FatGeometry geometry, byte[] label, HostEntry root, byte[] metadata,
        IEnumerable<(uint Cluster, byte[] Bytes)> directoryClusters, IEnumerable<(HostEntry File, uint[] Chain)> files)
    {
        int fatAt = (int)(geometry.FatOffset(0) - geometry.PartitionOffset);
        byte[] fat = metadata.AsSpan(fatAt, geometry.SectorsPerFat * FatGeometry.SectorSize).ToArray();
        var volume = new VvfatVolume(geometry, label, root.Path, fat) { Root = root };
        var extents = volume._extents;
        if (!geometry.Floppy)
            extents.Add(VvfatExtent.Memory(0, geometry.MasterBootRecord()));
        extents.Add(VvfatExtent.Memory(geometry.PartitionOffset, metadata));
        foreach (var (cluster, bytes) in directoryClusters)
            extents.Add(VvfatExtent.Memory(geometry.ClusterOffset(cluster), bytes));
        foreach (var (file, chain) in files)
        {
            // One extent per run of consecutive clusters.
            for (int i = 0; i < chain.Length;)
            {
                int run = 1;
                while (i + run < chain.Length && chain[i + run] == chain[i] + run)
                    run++;
                extents.Add(VvfatExtent.HostFile(geometry.ClusterOffset(chain[i]), (long)run * geometry.ClusterBytes, file, (long)i * geometry.ClusterBytes));
                i += run;
            }
        }
        extents.Sort((a, b) => a.Offset.CompareTo(b.Offset));
        return volume;
    }

    private void Lay()
    {
        var rootStat = Stat(Directory, out int rootErrno);
        if (rootStat is null || !rootStat.Value.IsDirectory)
        {
            var errno = rootStat is null ? (Errno)rootErrno : Errno.ENOTDIR;
            throw new BlockException(errno, $"Could not read directory {Directory}: {ErrnoText.Describe(errno)}");
        }
        var root = new HostEntry(Directory, string.Empty, isDirectory: true, 0, rootStat.Value.Times, parent: null);
        Root = root;
        var seen = new HashSet<(ulong, ulong)> { rootStat.Value.Identity };
        ReadChildren(root, seen);
        int rootEntries = 1 + EntriesOf(root);
        if (Geometry.FatType == 32)
        {
            Allocate(root, DirectoryClusters(rootEntries));
        }
        else if (rootEntries > Geometry.RootEntries)
        {
            throw new BlockException(Errno.ENOSPC,
                $"Could not read directory {Directory}: Too many entries in root directory ({rootEntries} of {Geometry.RootEntries})");
        }

        var order = new List<HostEntry>(root.Children);
        for (int i = 0; i < order.Count; i++)
        {
            var entry = order[i];
            if (entry.IsDirectory)
            {
                ReadChildren(entry, seen);
                RecordDotTimes(entry);
                order.AddRange(entry.Children);
                Allocate(entry, DirectoryClusters(2 + EntriesOf(entry)));
            }
            else
            {
                Allocate(entry, (entry.Size + Geometry.ClusterBytes - 1) / Geometry.ClusterBytes);
            }
        }

        WriteFatHead();
        var rootBytes = BuildDirectory(root, Geometry.FatType == 32 ? root.ClusterCount * Geometry.ClusterBytes : Geometry.RootEntries * FatDirectoryEntries.EntryBytes);
        foreach (var entry in order)
        {
            if (entry.IsDirectory)
                BuildDirectory(entry, entry.ClusterCount * Geometry.ClusterBytes);
        }
        AddExtents(root, rootBytes, order);
    }

    /// <summary>Directory entries a directory's children take (each: its long-name entries and its short entry).</summary>
    private static int EntriesOf(HostEntry directory)
    {
        int n = 0;
        foreach (var child in directory.Children)
            n += FatDirectoryEntries.LongEntryCount(child.Name) + 1;
        return n;
    }

    private long DirectoryClusters(int entries) =>
        Math.Max(1, ((long)entries * FatDirectoryEntries.EntryBytes + Geometry.ClusterBytes - 1) / Geometry.ClusterBytes);

    private void Allocate(HostEntry entry, long clusters)
    {
        if (clusters == 0)
            return;
        if (UsedClusters + clusters > Geometry.UsableClusters)
        {
            throw new BlockException(Errno.ENOSPC,
                $"Directory does not fit in FAT{Geometry.FatType} (capacity {Geometry.CapacityText} MB)");
        }
        entry.FirstCluster = _nextCluster;
        entry.ClusterCount = clusters;
        for (long c = 0; c < clusters; c++)
            SetFat(_nextCluster + (uint)c, c == clusters - 1 ? Geometry.EndOfChain : _nextCluster + (uint)c + 1);
        _nextCluster += (uint)clusters;
    }

    private void WriteFatHead()
    {
        byte media = Geometry.Floppy ? (byte)0xf0 : (byte)0xf8;
        SetFat(0, Geometry.EndOfChain & ~0xffu | media);
        SetFat(1, Geometry.EndOfChain);
    }

    private void SetFat(uint cluster, uint value)
    {
        switch (Geometry.FatType)
        {
            case 12:
                int at = (int)(cluster * 3 / 2);
                ushort old = BinaryPrimitives.ReadUInt16LittleEndian(Fat.AsSpan(at));
                ushort updated = (cluster & 1) == 0
                    ? (ushort)((old & 0xf000u) | (value & 0xfffu))
                    : (ushort)((old & 0x000fu) | ((value & 0xfffu) << 4));
                BinaryPrimitives.WriteUInt16LittleEndian(Fat.AsSpan(at), updated);
                break;
            case 16:
                BinaryPrimitives.WriteUInt16LittleEndian(Fat.AsSpan((int)cluster * 2), (ushort)value);
                break;
            default:
                BinaryPrimitives.WriteUInt32LittleEndian(Fat.AsSpan((int)cluster * 4), value);
                break;
        }
    }

    /// <summary>Reads a directory's entries in readdir order, with their short names; entries that cannot be stat'ed
    /// (dangling symbolic links) are left out, as QEMU leaves them out.</summary>
    private void ReadChildren(HostEntry directory, HashSet<(ulong, ulong)> seen)
    {
        var names = new FatShortNames();
        int entries = directory.Parent is null ? 1 : 2;
        IEnumerable<string> paths;
        try
        {
            paths = System.IO.Directory.EnumerateFileSystemEntries(directory.Path, "*", new EnumerationOptions
            {
                AttributesToSkip = 0,
                IgnoreInaccessible = false,
                RecurseSubdirectories = false,
                ReturnSpecialDirectories = false,
                MatchType = MatchType.Win32,
            });
            foreach (string path in paths)
            {
                var stat = Stat(path, out _);
                if (stat is null)
                    continue;
                var s = stat.Value;
                string name = Path.GetFileName(path);
                if (s.IsDirectory && !seen.Add(s.Identity))
                {
                    throw new BlockException(Errno.ELOOP,
                        $"Could not read directory {Directory}: {path} is a directory already in the volume (a symbolic link loop)");
                }
                if (!s.IsDirectory && s.Size > uint.MaxValue)
                    throw new BlockException(Errno.EFBIG, $"Could not read directory {Directory}: {path} is larger than a FAT file can be (4 GiB - 1)");
                var child = new HostEntry(path, name, s.IsDirectory, s.IsDirectory ? 0 : s.Size, s.Times, directory)
                {
                    ShortName = names.Assign(name),
                };
                entries += FatDirectoryEntries.LongEntryCount(name) + 1;
                if (entries > MaxDirectoryEntries)
                    throw new BlockException(Errno.ENOSPC, $"Could not read directory {Directory}: {directory.Path} has more entries than a FAT directory can hold ({MaxDirectoryEntries})");
                directory.Children.Add(child);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && e is not BlockException)
        {
            throw new BlockException(e is UnauthorizedAccessException ? Errno.EACCES : Errno.EIO,
                $"Could not read directory {directory.Path}: {e.Message}", e);
        }
    }

    private static void RecordDotTimes(HostEntry directory)
    {
        if (directory.Parent is null)
            return;
        var self = Stat(directory.Path, out _)?.Times ?? directory.Times;
        var parent = Stat(directory.Parent.Path, out _)?.Times ?? directory.Parent.Times;
        directory.DotTimes = (self, parent);
    }

    private byte[] BuildDirectory(HostEntry directory, long bytes)
    {
        var data = new byte[bytes];
        var span = data.AsSpan();
        int at = 0;
        if (directory.Parent is null)
        {
            FatDirectoryEntries.WriteVolumeLabel(span[..32], Label);
            at = 32;
        }
        else
        {
            FatDirectoryEntries.WriteShort(span.Slice(0, 32), s_dot, FatDirectoryEntries.AttributeDirectory, directory.DotTimes.Dot, directory.FirstCluster, 0);
            uint parentCluster = directory.Parent.Parent is null ? 0 : directory.Parent.FirstCluster;
            FatDirectoryEntries.WriteShort(span.Slice(32, 32), s_dotDot, FatDirectoryEntries.AttributeDirectory, directory.DotTimes.DotDot, parentCluster, 0);
            at = 64;
        }
        foreach (var child in directory.Children)
        {
            int longEntries = FatDirectoryEntries.LongEntryCount(child.Name);
            FatDirectoryEntries.WriteLong(span.Slice(at, longEntries * 32), child.Name, child.ShortName);
            at += longEntries * 32;
            FatDirectoryEntries.WriteShort(span.Slice(at, 32), child.ShortName,
                child.IsDirectory ? FatDirectoryEntries.AttributeDirectory : FatDirectoryEntries.AttributeArchive,
                child.Times, child.FirstCluster, (uint)child.Size);
            at += 32;
        }
        directory.DirectoryBytes = data;
        return data;
    }

    private void AddExtents(HostEntry root, byte[] rootBytes, List<HostEntry> order)
    {
        var g = Geometry;
        if (!g.Floppy)
            _extents.Add(VvfatExtent.Memory(0, g.MasterBootRecord()));
        var boot = g.BootSector(Label);
        _extents.Add(VvfatExtent.Memory(g.PartitionOffset, boot));
        if (g.FatType == 32)
        {
            var fsinfo = g.FsInfoSector(UsedClusters);
            _extents.Add(VvfatExtent.Memory(g.PartitionOffset + FatGeometry.SectorSize, fsinfo));
            _extents.Add(VvfatExtent.Memory(g.PartitionOffset + 6 * FatGeometry.SectorSize, boot));
            _extents.Add(VvfatExtent.Memory(g.PartitionOffset + 7 * FatGeometry.SectorSize, fsinfo));
        }
        _extents.Add(VvfatExtent.Memory(g.FatOffset(0), Fat));
        _extents.Add(VvfatExtent.Memory(g.FatOffset(1), Fat));
        if (g.FatType == 32)
            _extents.Add(VvfatExtent.Memory(g.ClusterOffset(root.FirstCluster), rootBytes));
        else
            _extents.Add(VvfatExtent.Memory(g.RootDirectoryOffset, rootBytes));
        foreach (var entry in order)
        {
            if (entry.ClusterCount == 0)
                continue;
            long offset = g.ClusterOffset(entry.FirstCluster);
            _extents.Add(entry.IsDirectory
                ? VvfatExtent.Memory(offset, entry.DirectoryBytes!)
                : VvfatExtent.HostFile(offset, entry.ClusterCount * g.ClusterBytes, entry));
        }
    }

    private readonly record struct HostStat(bool IsDirectory, long Size, HostTimes Times, (ulong, ulong) Identity);

    /// <summary><c>stat</c> (following symbolic links, as QEMU does), or null with the errno.</summary>
    private static unsafe HostStat? Stat(string path, out int errno)
    {
        LibC.Statx stx;
        if (LibC.StatX(LibC.AT_FDCWD, path, 0, LibC.STATX_BASIC_STATS, &stx) != 0)
        {
            errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            return null;
        }
        errno = 0;
        bool isDirectory = (stx.Mode & 0xf000) == 0x4000;
        ulong device = ((ulong)stx.DevMajor << 32) | stx.DevMinor;
        return new HostStat(isDirectory, (long)stx.Size, HostTimes.FromUnix(stx.AtimeSeconds, stx.MtimeSeconds, stx.CtimeSeconds), (device, stx.Ino));
    }
}
