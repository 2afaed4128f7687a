namespace Block.Devices;

/// <summary>
/// The guest device a VMM attaches to a <see cref="Graph.BlockBackend"/>, as QEMU's <c>BlockDevOps</c> describes it
/// to the block layer: whether its medium is removable, its tray and lock, and what it does when asked to eject or
/// told that its medium changed or was resized.
/// </summary>
/// <remarks>
/// The block layer asks; the device decides. A VMM implements this over its own device (a virtio-blk disk, an ATAPI
/// CD-ROM), or uses <see cref="FixedDiskModel"/> and <see cref="CdromModel"/>, which <c>blk serve --device</c> uses.
/// </remarks>
public interface IBlockDeviceModel
{
    /// <summary>The device's id (qdev <c>id</c>), which device commands accept as <c>id</c>.</summary>
    string Id { get; }

    /// <summary>True if the medium can be removed (CD-ROM); false for a fixed disk.</summary>
    bool IsRemovable { get; }

    /// <summary>True if the device has a tray, whose state <c>query-block</c> shows and <c>DEVICE_TRAY_MOVED</c> reports.</summary>
    bool HasTray { get; }

    /// <summary>True while the tray is open.</summary>
    bool IsTrayOpen { get; }

    /// <summary>True while the guest has locked the medium in (PREVENT ALLOW MEDIUM REMOVAL).</summary>
    bool IsMediumLocked { get; }

    /// <summary>True if the device reports an I/O status (virtio-blk, IDE and SCSI devices do).</summary>
    bool SupportsIoStatus { get; }

    /// <summary>
    /// The medium was loaded (<paramref name="load"/> true: the tray closes on it) or unloaded (the tray opens). Returns
    /// true if the tray moved.
    /// </summary>
    bool ChangeMedia(bool load);

    /// <summary>
    /// The user asked to open the tray while the guest holds the medium locked: the device passes the request on to
    /// the guest; <paramref name="force"/> also drops the lock, and the tray then opens by <see cref="ChangeMedia"/>.
    /// </summary>
    void RequestEject(bool force);

    /// <summary>The medium's length changed (<c>block_resize</c>).</summary>
    void Resized();
}
