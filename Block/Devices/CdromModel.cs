namespace Block.Devices;

/// <summary>
/// A CD-ROM with a tray (ide-cd/scsi-cd-like): removable; the tray opens when the medium is unloaded and closes when
/// one is loaded; a guest lock turns an eject into a request the guest sees, unless forced.
/// </summary>
/// <param name="id">The device's id.</param>
public sealed class CdromModel(string id) : IBlockDeviceModel
{
    private readonly object _lock = new();
    private bool _trayOpen;
    private bool _locked;
    private bool _ejectRequested;

    /// <inheritdoc />
    public string Id { get; } = id;

    /// <inheritdoc />
    public bool IsRemovable => true;

    /// <inheritdoc />
    public bool HasTray => true;

    /// <inheritdoc />
    public bool IsTrayOpen
    {
        get
        {
            lock (_lock)
                return _trayOpen;
        }
    }

    /// <inheritdoc />
    public bool IsMediumLocked
    {
        get
        {
            lock (_lock)
                return _locked;
        }
    }

    /// <summary>True once an eject was requested while the medium was locked, until the guest locks or unlocks again.</summary>
    public bool EjectRequested
    {
        get
        {
            lock (_lock)
                return _ejectRequested;
        }
    }

    /// <inheritdoc />
    public bool SupportsIoStatus => true;

    /// <summary>The guest locks or unlocks the medium (what a VMM's ATAPI/SCSI emulation calls).</summary>
    public void SetMediumLocked(bool locked)
    {
        lock (_lock)
        {
            _locked = locked;
            if (!locked)
                _ejectRequested = false;
        }
    }

    /// <inheritdoc />
    public bool ChangeMedia(bool load)
    {
        lock (_lock)
        {
            bool wasOpen = _trayOpen;
            _trayOpen = !load;
            return wasOpen != _trayOpen;
        }
    }

    /// <inheritdoc />
    public void RequestEject(bool force)
    {
        lock (_lock)
        {
            _ejectRequested = true;
            if (force)
                _locked = false;
        }
    }

    /// <inheritdoc />
    public void Resized()
    {
    }
}
