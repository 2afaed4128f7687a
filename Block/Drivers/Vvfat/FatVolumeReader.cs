using System.Buffers.Binary;
using System.Text;

namespace Block.Drivers.Vvfat;

/// <summary>
/// Reads the FAT volume as a guest has written it (through the overlay) into a tree of <see cref="FatNode"/>, and
/// says whether it is consistent enough to commit: every chain in range, ending with an end-of-chain mark, without
/// loops or clusters shared; every file's chain as long as its size needs; every allocated cluster used by some file
/// or directory; every name one the host can take inside the directory.
/// </summary>
/// <remarks>
/// Nothing the guest wrote is trusted: cluster numbers are checked against the volume before use, chains are walked
/// with a bitmap of clusters seen (a loop or a cluster in two chains is a problem, never a hang), a directory is read
/// only up to <see cref="MaxDirectoryBytes"/>, nesting is bounded by <see cref="MaxDepth"/> (deeper paths than a host
/// path can be) and the entries by <see cref="MaxEntries"/>, and the tree is walked with a queue, not recursion. Lost
/// clusters (allocated, used by nothing) make the state inconsistent on purpose: a guest moving a file writes the old
/// directory before the new one, and committing in between would delete the file on the host.
/// </remarks>
internal sealed class FatVolumeReader
{
    /// <summary>The most a directory may take (65536 entries), as FAT allows.</summary>
    public const int MaxDirectoryBytes = 65536 * FatDirectoryEntries.EntryBytes;

    /// <summary>The deepest nesting read: a host path (4096 bytes) cannot hold more names.</summary>
    public const int MaxDepth = 2048;

    /// <summary>The most entries read in all (empty files need no cluster, so clusters do not bound them).</summary>
    public const int MaxEntries = 1 << 20;

    private readonly FatGeometry _geometry;
    private readonly Action<long, Memory<byte>> _read;
    private readonly byte[] _fat;
    private readonly uint _maxCluster;
    private readonly bool[] _used;
    private int _entries;

    private FatVolumeReader(FatGeometry geometry, Action<long, Memory<byte>> read)
    {
        _geometry = geometry;
        _read = read;
        _fat = new byte[geometry.SectorsPerFat * FatGeometry.SectorSize];
        read(geometry.FatOffset(0), _fat);
        long dataClusters = (geometry.PartitionSectors - geometry.FirstDataSector) / geometry.SectorsPerCluster;
        long fatEntries = EntriesIn(geometry.FatType, _fat.Length);
        _maxCluster = (uint)Math.Min(dataClusters + 1, fatEntries - 1);
        _used = new bool[_maxCluster + 1];
    }

    /// <summary>
    /// Reads the volume through <paramref name="read"/>; the root of the tree, or null with the first
    /// <paramref name="problem"/> found.
    /// </summary>
    public static FatNode? Read(FatGeometry geometry, Action<long, Memory<byte>> read, out string? problem)
    {
        var reader = new FatVolumeReader(geometry, read);
        return reader.ReadTree(out problem);
    }

    /// <summary>The chain from <paramref name="first"/> in a FAT the volume built itself (trusted, but still bounded).</summary>
    public static uint[] ChainOf(FatGeometry geometry, byte[] fat, uint first)
    {
        var chain = new List<uint>();
        long entries = EntriesIn(geometry.FatType, fat.Length);
        uint end = EndOfChainMin(geometry.FatType);
        for (uint c = first; c >= 2 && c < entries - 1 && c < end && chain.Count < entries; c = Entry(geometry.FatType, fat, c))
            chain.Add(c);
        return [.. chain];
    }

    private static long EntriesIn(int fatType, int fatBytes) => fatType switch { 12 => fatBytes * 2L / 3, 16 => fatBytes / 2L, _ => fatBytes / 4L };

    private FatNode? ReadTree(out string? problem)
    {
        uint rootCluster = 0;
        uint[] rootChain = [];
        if (_geometry.FatType == 32)
        {
            var boot = new byte[FatGeometry.SectorSize];
            _read(_geometry.PartitionOffset, boot);
            rootCluster = BinaryPrimitives.ReadUInt32LittleEndian(boot.AsSpan(44));
            problem = Chain(rootCluster, out rootChain);
            if (problem != null)
                return null;
        }
        var root = new FatNode(string.Empty, isDirectory: true, rootCluster, 0, rootChain, parent: null);
        var queue = new Queue<FatNode>();
        queue.Enqueue(root);
        while (queue.Count > 0)
        {
            var directory = queue.Dequeue();
            problem = ReadDirectory(directory);
            if (problem != null)
                return null;
            foreach (var child in directory.Children)
            {
                if (child.IsDirectory)
                    queue.Enqueue(child);
            }
        }
        for (uint c = 2; c <= _maxCluster; c++)
        {
            uint value = Entry(c);
            if (value != 0 && value != BadCluster && !_used[c])
            {
                problem = $"cluster {c} is allocated but no file or directory uses it";
                return null;
            }
        }
        problem = null;
        return root;
    }

    private string? ReadDirectory(FatNode directory)
    {
        byte[] bytes;
        if (directory.Parent is null && _geometry.FatType != 32)
        {
            bytes = new byte[_geometry.RootEntries * FatDirectoryEntries.EntryBytes];
            _read(_geometry.RootDirectoryOffset, bytes);
        }
        else
        {
            if ((long)directory.Chain.Length * _geometry.ClusterBytes > MaxDirectoryBytes)
                return $"directory '{PathOf(directory)}' is larger than a FAT directory can be";
            bytes = new byte[directory.Chain.Length * _geometry.ClusterBytes];
            for (int i = 0; i < directory.Chain.Length; i++)
                _read(_geometry.ClusterOffset(directory.Chain[i]), bytes.AsMemory(i * _geometry.ClusterBytes, _geometry.ClusterBytes));
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        var longName = new LongNameParts();
        for (int at = 0; at < bytes.Length; at += FatDirectoryEntries.EntryBytes)
        {
            var entry = bytes.AsSpan(at, FatDirectoryEntries.EntryBytes);
            if (entry[0] == 0)
                break;
            if (entry[0] == 0xe5)
            {
                longName.Reset();
                continue;
            }
            byte attributes = entry[11];
            if ((attributes & 0x3f) == 0x0f)
            {
                longName.Add(entry);
                continue;
            }
            if ((attributes & 0x08) != 0)
            {
                longName.Reset();
                continue;
            }
            var shortName = entry[..11];
            if (shortName.SequenceEqual(".          "u8) || shortName.SequenceEqual("..         "u8))
            {
                longName.Reset();
                continue;
            }
            string name = longName.Take(FatDirectoryEntries.Checksum(shortName)) ?? ShortName(entry);
            string? bad = BadName(name);
            if (bad != null)
                return $"'{Printable(name)}' in '{PathOf(directory)}' is not a name the host directory can take: {bad}";
            if (!names.Add(name))
                return $"'{name}' is in '{PathOf(directory)}' twice";
            bool isDirectory = (attributes & FatDirectoryEntries.AttributeDirectory) != 0;
            uint first = BinaryPrimitives.ReadUInt16LittleEndian(entry[26..]);
            if (_geometry.FatType == 32)
                first |= (uint)BinaryPrimitives.ReadUInt16LittleEndian(entry[20..]) << 16;
            long size = isDirectory ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(entry[28..]);
            uint[] chain = [];
            if (first != 0)
            {
                string? chainProblem = Chain(first, out chain);
                if (chainProblem != null)
                    return $"'{PathOf(directory)}/{name}': {chainProblem}";
            }
            if (isDirectory && first == 0)
                return $"directory '{PathOf(directory)}/{name}' has no cluster";
            long needed = (size + _geometry.ClusterBytes - 1) / _geometry.ClusterBytes;
            if (!isDirectory && chain.Length != needed)
                return $"'{PathOf(directory)}/{name}' is {size} bytes but has {chain.Length} clusters";
            if (++_entries > MaxEntries)
                return $"the volume has more than {MaxEntries} entries";
            if (directory.Depth + 1 > MaxDepth)
                return $"'{PathOf(directory)}' is nested deeper than a host path can be";
            directory.Children.Add(new FatNode(name, isDirectory, first, size, chain, directory));
        }
        return null;
    }

    /// <summary>Walks the chain from <paramref name="first"/>, marking its clusters used; a problem, or null.</summary>
    private string? Chain(uint first, out uint[] chain)
    {
        var clusters = new List<uint>();
        chain = [];
        uint end = EndOfChainMin(_geometry.FatType);
        uint c = first;
        while (true)
        {
            if (c < 2 || c > _maxCluster)
                return $"cluster {c} is outside the volume (2 to {_maxCluster})";
            if (_used[c])
                return $"cluster {c} is in two chains, or its chain loops";
            _used[c] = true;
            clusters.Add(c);
            uint next = Entry(c);
            if (next >= end)
                break;
            if (next == 0)
                return $"the chain reaches cluster {c}, which is free";
            c = next;
        }
        chain = [.. clusters];
        return null;
    }

    private uint BadCluster => _geometry.FatType switch { 12 => 0xff7, 16 => 0xfff7, _ => 0x0ffffff7 };

    private static uint EndOfChainMin(int fatType) => fatType switch { 12 => 0xff8, 16 => 0xfff8, _ => 0x0ffffff8 };

    private uint Entry(uint cluster) => Entry(_geometry.FatType, _fat, cluster);

    private static uint Entry(int fatType, byte[] fat, uint cluster)
    {
        switch (fatType)
        {
            case 12:
                int at = (int)(cluster * 3 / 2);
                ushort pair = BinaryPrimitives.ReadUInt16LittleEndian(fat.AsSpan(at));
                return (cluster & 1) == 0 ? pair & 0xfffu : (uint)pair >> 4;
            case 16:
                return BinaryPrimitives.ReadUInt16LittleEndian(fat.AsSpan((int)cluster * 2));
            default:
                return BinaryPrimitives.ReadUInt32LittleEndian(fat.AsSpan((int)cluster * 4)) & 0x0fffffff;
        }
    }

    /// <summary>The 8.3 name as a FAT driver shows it: base, a dot and the extension when there is one, in lower case
    /// where the entry's case flags (byte 12, as Windows NT and Linux set them) say so.</summary>
    private static string ShortName(ReadOnlySpan<byte> entry)
    {
        Span<byte> raw = stackalloc byte[11];
        entry[..11].CopyTo(raw);
        if (raw[0] == 0x05)
            raw[0] = 0xe5;
        string stem = Encoding.Latin1.GetString(raw[..8]).TrimEnd(' ');
        string extension = Encoding.Latin1.GetString(raw[8..11]).TrimEnd(' ');
        if ((entry[12] & 0x08) != 0)
            stem = stem.ToLowerInvariant();
        if ((entry[12] & 0x10) != 0)
            extension = extension.ToLowerInvariant();
        return extension.Length == 0 ? stem : stem + "." + extension;
    }

    /// <summary>Why the host cannot take <paramref name="name"/> as one name in the directory, or null.</summary>
    private static string? BadName(string name)
    {
        if (name.Length == 0)
            return "it is empty";
        if (name is "." or "..")
            return "it names a directory that is not a new entry";
        if (name.Contains('/', StringComparison.Ordinal))
            return "it holds a path separator";
        if (name.Contains('\0', StringComparison.Ordinal))
            return "it holds a NUL character";
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsHighSurrogate(name[i]) && i + 1 < name.Length && char.IsLowSurrogate(name[i + 1]))
                i++;
            else if (char.IsSurrogate(name[i]))
                return "it is not valid UTF-16";
        }
        if (Encoding.UTF8.GetByteCount(name) > 255)
            return "it is longer than 255 bytes";
        return null;
    }

    private static string Printable(string name) => new(name.Select(c => char.IsControl(c) || char.IsSurrogate(c) ? '?' : c).ToArray());

    private static string PathOf(FatNode node)
    {
        var parts = new List<string>();
        for (var n = node; n?.Parent != null; n = n.Parent)
            parts.Add(Printable(n.Name));
        parts.Reverse();
        return "/" + string.Join('/', parts);
    }

    /// <summary>The long-name entries seen before a short entry: kept while they come in order (last part first, each
    /// with the same checksum), dropped at anything else.</summary>
    private sealed class LongNameParts
    {
        private readonly List<string> _parts = [];
        private int _next = -1;
        private byte _checksum;

        public void Reset()
        {
            _parts.Clear();
            _next = -1;
        }

        public void Add(ReadOnlySpan<byte> entry)
        {
            int sequence = entry[0] & 0x1f;
            if ((entry[0] & 0x40) != 0)
            {
                Reset();
                _next = sequence;
                _checksum = entry[13];
            }
            if (sequence == 0 || sequence != _next || entry[13] != _checksum)
            {
                Reset();
                return;
            }
            var units = new StringBuilder(13);
            for (int i = 0; i < 13; i++)
            {
                int at = i < 5 ? 1 + i * 2 : i < 11 ? 14 + (i - 5) * 2 : 28 + (i - 11) * 2;
                char unit = (char)BinaryPrimitives.ReadUInt16LittleEndian(entry[at..]);
                if (unit == '\0')
                    break;
                units.Append(unit);
            }
            _parts.Add(units.ToString());
            _next--;
        }

        /// <summary>The long name when its parts are complete and belong to a short name of <paramref name="checksum"/>; null otherwise. Resets.</summary>
        public string? Take(byte checksum)
        {
            string? name = null;
            if (_next == 0 && _parts.Count > 0 && checksum == _checksum)
            {
                _parts.Reverse();
                name = string.Concat(_parts);
            }
            Reset();
            return name;
        }
    }
}
