using Block.Options;

namespace Block.Qcow2.Driver;

/// <summary>QAPI <c>BlockdevOptionsQcow2</c> (with QEMU 2.12's <c>l2-cache-entry-size</c> and 4.0's <c>data-file</c>).</summary>
public sealed record BlockdevOptionsQcow2 : BlockdevOptions
{
    /// <summary>Creates options for the <c>qcow2</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsQcow2()
    {
        Driver = "qcow2";
        File = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The image file.</summary>
    public required BlockdevRef File { get; init; }

    /// <summary>The backing node, overriding the image's backing file; <see cref="NoBacking"/> opens none.</summary>
    public BlockdevRef? Backing { get; init; }

    /// <summary>True for <c>"backing": null</c>: open without the backing file the image names.</summary>
    public bool NoBacking { get; init; }

    /// <summary>The external data file, overriding the name in the image.</summary>
    public BlockdevRef? DataFile { get; init; }

    /// <summary>Postpone refcount updates (default: the image's lazy_refcounts setting).</summary>
    public bool? LazyRefcounts { get; init; }

    /// <summary>Pass guest discard requests to the file (default on).</summary>
    public bool? PassDiscardRequest { get; init; }

    /// <summary>Pass discards caused by snapshot deletion (default on).</summary>
    public bool? PassDiscardSnapshot { get; init; }

    /// <summary>Pass other discards (freed metadata, COW sources) (default off).</summary>
    public bool? PassDiscardOther { get; init; }

    /// <summary>Which metadata structures are protected against overlapping writes.</summary>
    public Qcow2OverlapChecks? OverlapCheck { get; init; }

    /// <summary>How to unlock an encrypted image.</summary>
    public BlockdevQcow2Encryption? Encrypt { get; init; }

    /// <summary>Total metadata cache size in bytes.</summary>
    public long? CacheSize { get; init; }

    /// <summary>L2 cache size in bytes.</summary>
    public long? L2CacheSize { get; init; }

    /// <summary>Size of one L2 cache entry (a slice of an L2 table) in bytes.</summary>
    public long? L2CacheEntrySize { get; init; }

    /// <summary>Refcount cache size in bytes.</summary>
    public long? RefcountCacheSize { get; init; }

    /// <summary>Seconds after which unused clean cache entries are dropped (0 = never).</summary>
    public long? CacheCleanInterval { get; init; }

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences
    {
        get
        {
            yield return new("file", File);
            if (Backing != null)
                yield return new("backing", Backing);
            if (DataFile != null)
                yield return new("data-file", DataFile);
        }
    }
}
