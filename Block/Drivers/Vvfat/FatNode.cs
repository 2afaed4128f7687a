namespace Block.Drivers.Vvfat;

/// <summary>A file or directory as a guest's writes left it in the FAT volume: its long name, its clusters, its size.</summary>
internal sealed class FatNode
{
    public FatNode(string name, bool isDirectory, uint firstCluster, long size, uint[] chain, FatNode? parent)
    {
        Name = name;
        IsDirectory = isDirectory;
        FirstCluster = firstCluster;
        Size = size;
        Chain = chain;
        Parent = parent;
        Depth = parent is null ? 0 : parent.Depth + 1;
    }

    /// <summary>The name: the long name when the entry has a valid one, else the 8.3 name as a FAT driver shows it.</summary>
    public string Name { get; }

    /// <summary>True for a directory.</summary>
    public bool IsDirectory { get; }

    /// <summary>The first cluster (0 for an empty file; 0 for a FAT12/16 root, whose entries are not in clusters).</summary>
    public uint FirstCluster { get; }

    /// <summary>A file's size in bytes (0 for directories).</summary>
    public long Size { get; }

    /// <summary>The clusters, in chain order.</summary>
    public uint[] Chain { get; }

    /// <summary>The directory it is in; null for the root.</summary>
    public FatNode? Parent { get; }

    /// <summary>A directory's entries, in directory order.</summary>
    public List<FatNode> Children { get; } = [];

    /// <summary>The host file or directory it was before the writes, once matched; null for a new one.</summary>
    public HostEntry? Origin { get; set; }

    /// <summary>Its depth below the root (the root is 0).</summary>
    public int Depth { get; }
}
