using Block.Io;

namespace Block.Vmdk.Extents;

/// <summary>What an extent asks of the disk it belongs to: the content below unallocated grains, and the first-write hook.</summary>
internal interface IVmdkParent
{
    /// <summary>
    /// Fills <paramref name="buffers"/> with what the disk shows at <paramref name="diskOffset"/> where this layer has
    /// nothing: the backing image's bytes (after checking its CID), zeroes past its end or without one.
    /// </summary>
    ValueTask ReadBelowAsync(long diskOffset, IoVector buffers);

    /// <summary>True if there is a backing image whose content unallocated grains show.</summary>
    bool HasBacking { get; }

    /// <summary>Called before any change to the disk's content: gives the disk a new CID on its first write after open.</summary>
    ValueTask BeforeFirstWriteAsync();
}
