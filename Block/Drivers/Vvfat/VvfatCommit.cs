using Microsoft.Win32.SafeHandles;

namespace Block.Drivers.Vvfat;

/// <summary>
/// Commits a consistent volume, as a guest's writes left it, back to the host directory: what changed since the
/// volume was built (or last committed) becomes renames and moves, deletions, new directories and files, and writes
/// to the files whose clusters changed; then the volume is rebuilt over the new host state with the guest's layout.
/// </summary>
/// <remarks>
/// <para>
/// An entry is the same file or directory as before when it starts at the same cluster (a rename or a move keeps the
/// clusters), or failing that when it has the same name and kind in the same directory (a file rewritten into new
/// clusters, an empty file that got some). A file's bytes are written where they changed only: each cluster that is
/// not the one the host file had at that place, or that the guest wrote, and then the size.
/// </para>
/// <para>
/// Everything the host will need is read first (the changed clusters go to a temporary file), because the disk below
/// reads host files that the commit renames and deletes. Then, in an order that never needs a name that is still
/// taken: entries that move are set aside in a hidden directory inside the host directory (the same file system, so a
/// rename), deepest first; deleted entries are removed, deepest first; the tree is put in place from the top (new
/// directories made, set-aside entries moved in, new files created); changed bytes are written. Every host path is
/// the host directory joined with names <see cref="FatVolumeReader"/> has checked (no separators, no <c>.</c> or
/// <c>..</c>), so nothing is written outside it; an entry whose new place is taken by something the volume does not
/// show (a file made on the host since) is an error, never overwritten.
/// </para>
/// </remarks>
internal sealed class VvfatCommit
{
    private readonly VvfatVolume _old;
    private readonly FatNode _root;
    private readonly VvfatOverlay _overlay;
    private readonly Action<long, Memory<byte>> _read;
    private readonly FatGeometry _g;
    private readonly Dictionary<HostEntry, FatNode> _matched = [];
    private readonly Dictionary<HostEntry, uint[]> _oldChains = [];
    private readonly Dictionary<HostEntry, string> _setAside = [];
    private readonly List<HostEntry> _oldEntries = [];

    private VvfatCommit(VvfatVolume old, FatNode root, VvfatOverlay overlay, Action<long, Memory<byte>> read)
    {
        _old = old;
        _root = root;
        _overlay = overlay;
        _read = read;
        _g = old.Geometry;
    }

    /// <summary>
    /// Commits <paramref name="root"/> (the volume read through the overlay) over <paramref name="old"/>; the rebuilt
    /// volume, or null when nothing the host holds changed.
    /// </summary>
    /// <exception cref="BlockException">The host refused a change; the directory may hold part of the commit.</exception>
    public static VvfatVolume? Run(VvfatVolume old, FatNode root, VvfatOverlay overlay, Action<long, Memory<byte>> read) =>
        new VvfatCommit(old, root, overlay, read).Run();

    private sealed record FileWrite(FatNode Node, List<int> Clusters, long StagedAt);

    private VvfatVolume? Run()
    {
        CollectOld(_old.Root);
        Match();
        var moves = _oldEntries.Where(o => o.Parent != null && _matched.TryGetValue(o, out var n) && Moved(o, n)).ToList();
        var deletes = _oldEntries.Where(o => o.Parent != null && !_matched.ContainsKey(o)).ToList();
        var nodes = Nodes(_root).Where(n => n.Parent != null).ToList();
        var creates = nodes.Where(n => n.Origin is null).ToList();
        var writes = new List<(FatNode Node, List<int> Clusters)>();
        foreach (var node in nodes.Where(n => !n.IsDirectory))
        {
            var clusters = ChangedClusters(node);
            if (clusters.Count > 0 || node.Origin is null || node.Origin.Size != node.Size)
                writes.Add((node, clusters));
        }
        if (moves.Count == 0 && deletes.Count == 0 && creates.Count == 0 && writes.Count == 0)
            return null;

        // Everything read from the disk before the host changes.
        byte[] metadata = new byte[_g.ClusterOffset(2) - _g.PartitionOffset];
        _read(_g.PartitionOffset, metadata);
        var directoryClusters = new List<(uint, byte[])>();
        foreach (var directory in nodes.Where(n => n.IsDirectory).Prepend(_root))
        {
            foreach (uint cluster in directory.Chain)
            {
                var bytes = new byte[_g.ClusterBytes];
                _read(_g.ClusterOffset(cluster), bytes);
                directoryClusters.Add((cluster, bytes));
            }
        }
        RefuseTakenNames(nodes, moves, deletes);
        using var staging = Stage(writes, out var staged);

        string? asideDirectory = null;
        try
        {
            if (moves.Count > 0)
            {
                asideDirectory = Path.Combine(_old.Directory, $".vvfat-commit-{Guid.NewGuid():N}");
                Host(() => Directory.CreateDirectory(asideDirectory), "create", asideDirectory);
                int i = 0;
                foreach (var entry in moves.OrderByDescending(Depth))
                {
                    string from = CurrentPath(entry);
                    string to = Path.Combine(asideDirectory, (i++).ToString(System.Globalization.CultureInfo.InvariantCulture));
                    Move(entry.IsDirectory, from, to);
                    _setAside[entry] = to;
                }
            }
            foreach (var entry in deletes.OrderByDescending(Depth))
            {
                string path = CurrentPath(entry);
                if (entry.IsDirectory)
                    Host(() => Directory.Delete(path, recursive: false), "remove", path);
                else
                    Host(() => System.IO.File.Delete(path), "delete", path);
            }
            foreach (var node in nodes)
                Place(node);
            foreach (var write in staged)
                Write(staging, write);
        }
        finally
        {
            // Empty unless the host refused a step; then what is in it is left for the error to point at.
            if (asideDirectory != null && Directory.Exists(asideDirectory) && !Directory.EnumerateFileSystemEntries(asideDirectory).Any())
                Directory.Delete(asideDirectory, recursive: false);
        }
        return Rebuild(nodes, metadata, directoryClusters);
    }

    private void CollectOld(HostEntry root)
    {
        var queue = new Queue<HostEntry>();
        queue.Enqueue(root);
        while (queue.Count > 0)
        {
            var entry = queue.Dequeue();
            _oldEntries.Add(entry);
            _oldChains[entry] = entry.FirstCluster == 0 ? [] : FatVolumeReader.ChainOf(_g, _old.Fat, entry.FirstCluster);
            foreach (var child in entry.Children)
                queue.Enqueue(child);
        }
    }

    /// <summary>Pairs the guest's entries with the host's: by first cluster, then by name and kind in the same directory.</summary>
    private void Match()
    {
        _root.Origin = _old.Root;
        _matched[_old.Root] = _root;
        var byCluster = new Dictionary<uint, HostEntry>();
        foreach (var entry in _oldEntries)
        {
            if (entry.Parent != null && entry.FirstCluster != 0)
                byCluster[entry.FirstCluster] = entry;
        }
        var nodes = Nodes(_root).Where(n => n.Parent != null).ToList();
        foreach (var node in nodes)
        {
            if (node.FirstCluster != 0 && byCluster.TryGetValue(node.FirstCluster, out var entry) && entry.IsDirectory == node.IsDirectory)
            {
                node.Origin = entry;
                _matched[entry] = node;
            }
        }
        // Breadth first, so a directory is matched before its entries look for a match in it.
        foreach (var node in nodes)
        {
            if (node.Origin != null || node.Parent!.Origin is not { } parent)
                continue;
            var entry = parent.Children.FirstOrDefault(c => c.Name == node.Name && c.IsDirectory == node.IsDirectory && !_matched.ContainsKey(c));
            if (entry != null)
            {
                node.Origin = entry;
                _matched[entry] = node;
            }
        }
    }

    private static bool Moved(HostEntry entry, FatNode node) => node.Name != entry.Name || node.Parent!.Origin != entry.Parent;

    /// <summary>The indexes of a file's clusters whose bytes the host file does not hold at that place.</summary>
    private List<int> ChangedClusters(FatNode node)
    {
        var changed = new List<int>();
        uint[] old = node.Origin is { } origin ? _oldChains[origin] : [];
        for (int i = 0; i < node.Chain.Length; i++)
        {
            uint cluster = node.Chain[i];
            long firstSector = _g.ClusterOffset(cluster) / FatGeometry.SectorSize;
            if (i >= old.Length || old[i] != cluster || _overlay.AnyWritten(firstSector, _g.SectorsPerCluster))
                changed.Add(i);
        }
        return changed;
    }

    private SafeFileHandle Stage(List<(FatNode Node, List<int> Clusters)> writes, out List<FileWrite> staged)
    {
        staged = [];
        string path = Path.Combine(Path.GetTempPath(), $"vvfat-commit-{Guid.NewGuid():N}");
        SafeFileHandle handle;
        try
        {
            handle = System.IO.File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BlockException(Errno.EIO, $"vvfat: could not create a temporary file in {Path.GetTempPath()} to commit to {_old.Directory}: {e.Message}", e);
        }
        try
        {
            var buffer = new byte[_g.ClusterBytes];
            long at = 0;
            foreach (var (node, clusters) in writes)
            {
                staged.Add(new FileWrite(node, clusters, at));
                foreach (int i in clusters)
                {
                    _read(_g.ClusterOffset(node.Chain[i]), buffer);
                    RandomAccess.Write(handle, buffer, at);
                    at += buffer.Length;
                }
            }
        }
        catch (IOException e)
        {
            handle.Dispose();
            throw new BlockException(Errno.EIO, $"vvfat: could not stage a commit to {_old.Directory} in {Path.GetTempPath()}: {e.Message}", e);
        }
        return handle;
    }

    private int Depth(HostEntry entry)
    {
        int depth = 0;
        for (var e = entry.Parent; e != null; e = e.Parent)
            depth++;
        return depth;
    }

    /// <summary>Where a host entry is now: set aside, or under its parent's current path.</summary>
    private string CurrentPath(HostEntry entry)
    {
        if (_setAside.TryGetValue(entry, out string? aside))
            return aside;
        return entry.Parent is null ? _old.Directory : Path.Combine(CurrentPath(entry.Parent), entry.Name);
    }

    private readonly Dictionary<FatNode, string> _finalPaths = [];

    private string FinalPath(FatNode node)
    {
        if (node.Parent is null)
            return _old.Directory;
        if (!_finalPaths.TryGetValue(node, out string? path))
        {
            path = Path.Combine(FinalPath(node.Parent), node.Name);
            _finalPaths[node] = path;
        }
        return path;
    }

    /// <summary>
    /// Before anything changes: every place an entry is to be created or moved to is free, or held by an entry that
    /// moves away or is deleted. Something else there (made on the host since the volume was built, or left out of it)
    /// is an error, never overwritten.
    /// </summary>
    private void RefuseTakenNames(List<FatNode> nodes, List<HostEntry> moves, List<HostEntry> deletes)
    {
        var vacated = new HashSet<string>(moves.Concat(deletes).Select(CurrentPath), StringComparer.Ordinal);
        var moving = new HashSet<HostEntry>(moves);
        bool Vacated(string path)
        {
            // The path, or a directory above it that moves away or goes.
            for (string? p = path; p != null && p.Length > _old.Directory.Length; p = Path.GetDirectoryName(p))
            {
                if (vacated.Contains(p))
                    return true;
            }
            return false;
        }
        foreach (var node in nodes)
        {
            if (node.Origin is { } origin && !moving.Contains(origin))
                continue;
            string path = FinalPath(node);
            if (!Vacated(path) && Exists(path))
                throw new BlockException(Errno.EEXIST, $"vvfat: could not commit '{path}': the host directory already has an entry of that name that the disk does not show");
        }
    }

    private static bool Exists(string path) => System.IO.File.Exists(path) || Directory.Exists(path) || new FileInfo(path).LinkTarget != null;

    private void Place(FatNode node)
    {
        string path = FinalPath(node);
        if (node.Origin is { } origin)
        {
            if (_setAside.TryGetValue(origin, out string? aside))
            {
                Refuse(path);
                Move(node.IsDirectory, aside, path);
            }
            return;
        }
        Refuse(path);
        if (node.IsDirectory)
            Host(() => Directory.CreateDirectory(path), "create", path);
        else
            Host(() => System.IO.File.Open(path, FileMode.CreateNew, FileAccess.Write).Dispose(), "create", path);
    }

    /// <summary>Refuses to put an entry where the host already has one the volume does not show.</summary>
    private static void Refuse(string path)
    {
        if (Exists(path))
            throw new BlockException(Errno.EEXIST, $"vvfat: could not commit '{path}': the host directory already has an entry of that name that the disk does not show");
    }

    private void Write(SafeFileHandle staging, FileWrite write)
    {
        string path = FinalPath(write.Node);
        Host(() =>
        {
            using var file = System.IO.File.OpenHandle(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            var buffer = new byte[_g.ClusterBytes];
            long from = write.StagedAt;
            foreach (int i in write.Clusters)
            {
                long offset = (long)i * _g.ClusterBytes;
                int length = (int)Math.Min(_g.ClusterBytes, write.Node.Size - offset);
                RandomAccess.Read(staging, buffer, from);
                from += buffer.Length;
                RandomAccess.Write(file, buffer.AsSpan(0, length), offset);
            }
            RandomAccess.SetLength(file, write.Node.Size);
        }, "write", path);
    }

    private static void Move(bool isDirectory, string from, string to)
    {
        if (isDirectory)
            Host(() => Directory.Move(from, to), "move", $"{from} to {to}");
        else
            Host(() => System.IO.File.Move(from, to, overwrite: false), "move", $"{from} to {to}");
    }

    private static void Host(Action action, string verb, string what)
    {
        try
        {
            action();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var errno = e is UnauthorizedAccessException ? Errno.EACCES : e is FileNotFoundException or DirectoryNotFoundException ? Errno.ENOENT : Errno.EIO;
            throw new BlockException(errno, $"vvfat: could not {verb} {what} while committing to the host directory: {e.Message}", e);
        }
    }

    private VvfatVolume Rebuild(List<FatNode> nodes, byte[] metadata, List<(uint, byte[])> directoryClusters)
    {
        var hostRoot = new HostEntry(_old.Directory, string.Empty, isDirectory: true, 0, default, parent: null) { FirstCluster = _root.FirstCluster };
        var entries = new Dictionary<FatNode, HostEntry> { [_root] = hostRoot };
        var files = new List<(HostEntry, uint[])>();
        foreach (var node in nodes)
        {
            var parent = entries[node.Parent!];
            var entry = new HostEntry(FinalPath(node), node.Name, node.IsDirectory, node.Size, default, parent)
            {
                FirstCluster = node.FirstCluster,
                ClusterCount = node.Chain.Length,
            };
            parent.Children.Add(entry);
            entries[node] = entry;
            if (!node.IsDirectory && node.Chain.Length > 0)
                files.Add((entry, node.Chain));
        }
        var volume = VvfatVolume.Rebuilt(_g, _old.Label, hostRoot, metadata, directoryClusters, files);
        // What the rebuilt volume holds no longer needs the overlay: metadata and directories are in memory, file
        // clusters are the host's. Writes to free clusters stay.
        _overlay.Forget(_g.PartitionStartSector, metadata.Length / FatGeometry.SectorSize);
        foreach (var node in nodes.Prepend(_root))
        {
            foreach (uint cluster in node.Chain)
                _overlay.Forget(_g.ClusterOffset(cluster) / FatGeometry.SectorSize, _g.SectorsPerCluster);
        }
        return volume;
    }

    private static IEnumerable<FatNode> Nodes(FatNode root)
    {
        var queue = new Queue<FatNode>();
        queue.Enqueue(root);
        while (queue.Count > 0)
        {
            var node = queue.Dequeue();
            yield return node;
            foreach (var child in node.Children)
                queue.Enqueue(child);
        }
    }
}
