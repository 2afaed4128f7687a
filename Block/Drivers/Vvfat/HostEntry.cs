namespace Block.Drivers.Vvfat;

/// <summary>One host file or directory in the volume: where it is, its names, its times and its clusters.</summary>
internal sealed class HostEntry
{
    public HostEntry(string path, string name, bool isDirectory, long size, HostTimes times, HostEntry? parent)
    {
        Path = path;
        Name = name;
        IsDirectory = isDirectory;
        Size = size;
        Times = times;
        Parent = parent;
    }

    /// <summary>The host path.</summary>
    public string Path { get; }

    /// <summary>The host name (the long name in the volume).</summary>
    public string Name { get; }

    /// <summary>True for a directory.</summary>
    public bool IsDirectory { get; }

    /// <summary>The file's size at open (0 for directories).</summary>
    public long Size { get; }

    /// <summary>The times its entry carries.</summary>
    public HostTimes Times { get; }

    /// <summary>The times of a directory's <c>.</c> and <c>..</c> entries: its own and its parent's, as they were once
    /// it had been read (so with the access date its reading gave it, as QEMU's <c>stat</c> of <c>dir/.</c> and
    /// <c>dir/..</c> during its readdir gives them).</summary>
    public (HostTimes Dot, HostTimes DotDot) DotTimes { get; set; }

    /// <summary>The directory it is in; null for the root.</summary>
    public HostEntry? Parent { get; }

    /// <summary>The 8.3 name (11 bytes).</summary>
    public byte[] ShortName { get; set; } = [];

    /// <summary>A directory's entries, in the host's readdir order.</summary>
    public List<HostEntry> Children { get; } = [];

    /// <summary>The first of its contiguous clusters; 0 when it has none (an empty file).</summary>
    public uint FirstCluster { get; set; }

    /// <summary>How many clusters it takes.</summary>
    public long ClusterCount { get; set; }

    /// <summary>A directory's entries in bytes (its clusters, or the fixed root directory), once built.</summary>
    public byte[]? DirectoryBytes { get; set; }
}
