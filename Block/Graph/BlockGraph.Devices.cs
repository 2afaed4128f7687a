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
        return Backends.FirstOrDefault(b => b.Options.QdevId == id)
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
}
