using Block.Events;
using Block.Throttle;

namespace Block.Graph;

public sealed partial class BlockGraph
{
    /// <summary>
    /// The backend a device command names by backend name (<paramref name="device"/>) or by the qdev id of the
    /// device attached to it (<paramref name="id"/>), exactly one of the two (QEMU's <c>qmp_get_blk</c>).
    /// </summary>
    /// <exception cref="BlockException">"Need exactly one of 'device' and 'id'".</exception>
    /// <exception cref="BlockNotFoundException">"Device 'x' not found", class DeviceNotFound.</exception>
    public BlockBackend LookupDevice(string? device, string? id)
    {
        if ((device == null) == (id == null))
            throw new BlockException(Errno.EINVAL, "Need exactly one of 'device' and 'id'");
        if (device != null)
            return LookupBackend(device);
        return Backends.FirstOrDefault(b => b.Device?.Id == id)
            ?? throw new BlockNotFoundException($"Device '{id}' not found", QmpErrorClass.DeviceNotFound);
    }

    /// <summary>
    /// <c>block_set_io_throttle</c>: sets the I/O limits of a device's backend (see
    /// <see cref="BlockBackend.SetIoThrottle"/>); a backend not yet throttled joins <paramref name="group"/>, else a
    /// group named after <paramref name="device"/> or <paramref name="id"/>.
    /// </summary>
    /// <exception cref="BlockException">A lookup error, "Device has no medium", or QEMU's validation message.</exception>
    public void SetIoThrottle(string? device, string? id, ThrottleConfig config, string? group)
    {
        var backend = LookupDevice(device, id);
        if (backend.Root is null)
            throw new BlockException(Errno.ENOMEDIUM, "Device has no medium");
        backend.SetIoThrottle(config, group, device ?? id);
    }

    /// <summary>Tells the devices on <paramref name="node"/>'s backends that its length changed.</summary>
    private void NotifyResized(BlockNode node)
    {
        foreach (var backend in Backends)
        {
            if (backend.Root == node)
                backend.Device?.Resized();
        }
    }

    /// <summary>
    /// <c>blockdev-open-tray</c>: opens a device's tray (the medium stays in it). A tray-less device or an open tray
    /// is left as it is; a locked medium gets an eject request first, and the tray opens only with
    /// <paramref name="force"/>. Raises <see cref="DeviceTrayMovedEvent"/> when the tray moves.
    /// </summary>
    /// <exception cref="BlockException">A lookup error; "Device 'x' is not removable"; or the locked medium's message.</exception>
    public void OpenTray(string? device, string? id, bool force)
    {
        var backend = LookupDevice(device, id);
        string name = device ?? id!;
        if (backend.Device is not { } model)
            return;
        if (!model.IsRemovable)
            throw new BlockException(Errno.EINVAL, $"Device '{name}' is not removable");
        if (!model.HasTray || model.IsTrayOpen)
            return;
        bool locked = model.IsMediumLocked;
        if (locked)
            model.RequestEject(force);
        if (locked && !force)
            throw new BlockException(Errno.EBUSY, $"Device '{name}' is locked and force was not specified, wait for tray to open and try again");
        if (model.ChangeMedia(load: false))
            RaiseEvent(new DeviceTrayMovedEvent(backend.Name, model.Id, TrayOpen: true));
    }

    /// <summary>
    /// <c>blockdev-close-tray</c>: closes a device's tray on whatever medium it holds. A tray-less device or a closed
    /// tray is left as it is. Raises <see cref="DeviceTrayMovedEvent"/> when the tray moves.
    /// </summary>
    /// <exception cref="BlockException">A lookup error, or "Device 'x' is not removable".</exception>
    public void CloseTray(string? device, string? id)
    {
        var backend = LookupDevice(device, id);
        if (backend.Device is not { } model)
            return;
        if (!model.IsRemovable)
            throw new BlockException(Errno.EINVAL, $"Device '{device ?? id}' is not removable");
        if (!model.HasTray || !model.IsTrayOpen)
            return;
        if (model.ChangeMedia(load: true))
            RaiseEvent(new DeviceTrayMovedEvent(backend.Name, model.Id, TrayOpen: false));
    }
}
