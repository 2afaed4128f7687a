namespace Block.Devices;

/// <summary>A disk whose medium cannot be removed (virtio-blk-like): no tray, an I/O status, resize noted.</summary>
/// <param name="id">The device's id.</param>
public sealed class FixedDiskModel(string id) : IBlockDeviceModel
{
    private int _resizes;

    /// <inheritdoc />
    public string Id { get; } = id;

    /// <inheritdoc />
    public bool IsRemovable => false;

    /// <inheritdoc />
    public bool HasTray => false;

    /// <inheritdoc />
    public bool IsTrayOpen => false;

    /// <inheritdoc />
    public bool IsMediumLocked => false;

    /// <inheritdoc />
    public bool SupportsIoStatus => true;

    /// <summary>How many resize notifications the device had (a guest would see a capacity change each time).</summary>
    public int ResizeCount => Volatile.Read(ref _resizes);

    /// <inheritdoc />
    public bool ChangeMedia(bool load) => false;

    /// <inheritdoc />
    public void RequestEject(bool force)
    {
    }

    /// <inheritdoc />
    public void Resized() => Interlocked.Increment(ref _resizes);
}
