namespace Block.Drivers;

/// <summary>Where a driver sits in a graph.</summary>
public enum BlockDriverKind
{
    /// <summary>The bottom of a chain: files, devices, network protocols, null.</summary>
    Protocol,
    /// <summary>An image format over a <c>file</c> child: raw, qcow2, vmdk, luks…</summary>
    Format,
    /// <summary>A node whose content is its child's: blkdebug, throttle, copy-on-read…</summary>
    Filter,
}
