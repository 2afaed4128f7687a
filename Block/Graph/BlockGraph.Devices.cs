using System.Collections.Concurrent;
using Block.Events;
using Block.Qapi;
using Block.Throttle;

namespace Block.Graph;

public sealed partial class BlockGraph
{
    private readonly ConcurrentDictionary<string, byte> _devicesWithoutBackend = new(StringComparer.Ordinal);
    private int _ioErrorStopped;

    /// <summary>
    /// The backend a device command names by backend name (<paramref name="device"/>) or by the qdev id of the
    /// device attached to it (<paramref name="id"/>), exactly one of the two (QEMU's <c>qmp_get_blk</c>).
    /// </summary>
    /// <exception cref="BlockException">"Need exactly one of 'device' and 'id'"; "Device does not have a block device
    /// backend" for an id given to <see cref="AddDeviceWithoutBackend"/>.</exception>
    /// <exception cref="BlockNotFoundException">"Device 'x' not found", class DeviceNotFound.</exception>
    public BlockBackend LookupDevice(string? device, string? id)
    {
        if ((device == null) == (id == null))
            throw new BlockException(Errno.EINVAL, "Need exactly one of 'device' and 'id'");
        if (device != null)
            return LookupBackend(device);
        if (_devicesWithoutBackend.ContainsKey(id!))
            throw new BlockException(Errno.EINVAL, "Device does not have a block device backend");
        return Backends.FirstOrDefault(b => b.Device?.Id == id)
            ?? throw new BlockNotFoundException($"Device '{id}' not found", QmpErrorClass.DeviceNotFound);
    }

    /// <summary>
    /// Tells the graph of a VMM device that holds no backend under its qdev <paramref name="id"/>: a controller
    /// (virtio-scsi-pci, ahci), or a proxy such as QEMU's virtio-blk-pci, whose id names the PCI function while the
    /// backend belongs to the virtio-blk device inside it. Device commands given that id answer QEMU's "Device does
    /// not have a block device backend" instead of finding a model attached under the same id, as qemu-system-x86_64
    /// answers for <c>-device virtio-blk-pci,id=…</c>.
    /// </summary>
    public void AddDeviceWithoutBackend(string id)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        _devicesWithoutBackend.TryAdd(id, 0);
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

    /// <summary>True from the first request an error policy stopped until <see cref="Continue"/>.</summary>
    public bool IsStoppedByIoError => Volatile.Read(ref _ioErrorStopped) != 0;

    /// <summary>
    /// QMP <c>cont</c>: resets every backend's io-status and lets every request held by a <c>stop</c> policy retry,
    /// raising <see cref="ResumeEvent"/> first if an error had stopped I/O (QEMU resets the io-statuses, starts the VM
    /// and then restarts the devices' held requests). As in QEMU 2.8, nothing runs while a medium waits for its key.
    /// </summary>
    /// <exception cref="DeviceEncryptedException">A backend's medium is encrypted and has no key yet
    /// (<see cref="SetPasswordAsync"/>); the io-statuses are reset all the same, as in QEMU 2.8.</exception>
    public void Continue()
    {
        var backends = Backends;
        foreach (var backend in backends)
            backend.ResetIoStatus();
        foreach (var backend in backends)
        {
            if (backend.Root is { KeyRequired: true } root)
                throw new DeviceEncryptedException(DeviceOrNodeName(root), EncryptedFilename(root));
        }
        if (Interlocked.Exchange(ref _ioErrorStopped, 0) != 0)
            RaiseEvent(new ResumeEvent());
        foreach (var backend in backends)
            backend.ReleaseHeld();
    }

    /// <summary>
    /// QMP <c>block_passwd</c> (QEMU 2.8; gone in 7.2): gives the encrypted image of a device (by backend name,
    /// <paramref name="device"/>) or node (<paramref name="nodeName"/>) its password, and an encrypted backing node
    /// below it the same one. An image opened with <see cref="ImageOpenOptions.KeyLater"/> and no key becomes usable;
    /// a key already set is replaced. The graph is drained meanwhile, so no request sees a key change mid-way. The first
    /// key of a device's image tells the device its medium loaded (<see cref="Devices.IBlockDeviceModel.ChangeMedia"/>), as 2.8
    /// does: a CD-ROM's open tray closes, with <see cref="DeviceTrayMovedEvent"/>.
    /// </summary>
    /// <remarks>Legacy qcow2 AES takes any password (nothing in the image can tell a wrong one), as in QEMU 2.8.</remarks>
    /// <exception cref="BlockException">The lookup's errors; "Node 'x' is not encrypted" (2.8's text, with the device
    /// name for a backend's root); "Password incorrect" for a format that takes no password this way.</exception>
    public async ValueTask SetPasswordAsync(string? device, string? nodeName, string password, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(password);
        var node = LookupNode(device, nodeName);
        if (!IsEncrypted(node))
            throw new BlockException(Errno.EINVAL, $"Node '{DeviceOrNodeName(node)}' is not encrypted");
        cancellationToken.ThrowIfCancellationRequested();
        await using var drained = await BeginDrainAsync().ConfigureAwait(false);
        bool waiting = node.Impl.IsKeyMissing;
        SetKey(node, password);
        // As 2.8's bdrv_set_key: the first valid key of a device's own image loads its medium, which a CD-ROM sees as
        // a medium change (its tray closes on it). A key for an encrypted backing node alone tells no device.
        if (waiting && !node.Impl.IsKeyMissing)
        {
            foreach (var backend in Backends)
            {
                if (backend.Root == node)
                    ChangeMedia(backend, load: true);
            }
        }

        static bool IsEncrypted(BlockNode n) => n.Impl.IsEncrypted || n.Backing?.Node.Impl.IsEncrypted == true;

        // The backing node first, down its own chain as long as it is encrypted; then the node itself.
        static void SetKey(BlockNode n, string password)
        {
            if (n.Backing?.Node is { } backing && backing.Impl.IsEncrypted)
                SetKey(backing, password);
            if (n.Impl.IsEncrypted)
                n.Impl.SetKey(password);
        }
    }

    /// <summary>The encrypted file a node waiting for its key names in errors: its own, else its backing node's.</summary>
    private static string EncryptedFilename(BlockNode node) =>
        node.Impl.IsEncrypted ? node.Filename : node.Backing?.Node.Filename ?? node.Filename;

    /// <summary>A backend's error policy held a request: the first one since <see cref="Continue"/> raises <see cref="StopEvent"/>.</summary>
    internal void OnIoErrorStop()
    {
        if (Interlocked.Exchange(ref _ioErrorStopped, 1) == 0)
            RaiseEvent(new StopEvent());
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
    /// <c>blockdev-open-tray</c>: opens a device's tray (the medium stays in it). A backend without a device, a tray-less
    /// device or an open tray is left as it is. A medium the guest has locked gets an eject request, and the tray opens
    /// now only with <paramref name="force"/>; otherwise the guest may open it later. Raises
    /// <see cref="DeviceTrayMovedEvent"/> when the tray moves.
    /// </summary>
    /// <returns>False if the medium is locked and <paramref name="force"/> was not given (QEMU answers success: the
    /// request went to the guest); true otherwise.</returns>
    /// <exception cref="BlockException">A lookup error, or "Device 'x' is not removable".</exception>
    public bool OpenTray(string? device, string? id, bool force)
    {
        var backend = LookupDevice(device, id);
        return OpenTray(backend, device ?? id!, force) != TrayOpening.Locked;
    }

    /// <summary>
    /// <c>blockdev-close-tray</c>: closes a device's tray on whatever medium it holds. A backend without a device, a
    /// tray-less device or a closed tray is left as it is. Raises <see cref="DeviceTrayMovedEvent"/> when the tray moves.
    /// </summary>
    /// <exception cref="BlockException">A lookup error, or "Device 'x' is not removable".</exception>
    public void CloseTray(string? device, string? id) => CloseTray(LookupDevice(device, id), device ?? id!);

    /// <summary>
    /// <c>x-blockdev-remove-medium</c> (QEMU 7.2's <c>blockdev-remove-medium</c>): takes the medium out of a removable
    /// device whose tray is open, or out of a backend without a device at any time. The node tree goes with it unless
    /// something else holds it (a node added by <see cref="AddNodeAsync"/> stays). An empty drive is left as it is.
    /// </summary>
    /// <exception cref="BlockException">A lookup error; "Device 'x' is not removable"; "Tray of device 'x' is not open";
    /// "Node 'x' is busy: …" while a job uses the medium.</exception>
    public ValueTask RemoveMediumAsync(string? device, string? id)
    {
        var backend = LookupDevice(device, id);
        return RemoveMediumAsync(backend, device ?? id!);
    }

    /// <summary>
    /// <c>x-blockdev-insert-medium</c> (QEMU 7.2's <c>blockdev-insert-medium</c>): puts node <paramref name="nodeName"/>
    /// (from <see cref="AddNodeAsync"/>) into an empty removable device whose tray is open, or into an empty backend
    /// without a device. The tray stays open until <see cref="CloseTray(string?, string?)"/>.
    /// </summary>
    /// <exception cref="BlockException">A lookup error; "Node 'x' not found"; "Node 'x' is already in use"; "Device is
    /// not removable"; "Tray of the device is not open"; "There already is a medium in the device".</exception>
    public async ValueTask InsertMediumAsync(string? device, string? id, string nodeName)
    {
        ArgumentNullException.ThrowIfNull(nodeName);
        var backend = LookupDevice(device, id);
        var node = FindNode(nodeName) ?? throw new BlockNotFoundException($"Node '{nodeName}' not found");
        if (node.Parents.Any(p => p.Parent is BlockBackend))
            throw new BlockException(Errno.EBUSY, $"Node '{nodeName}' is already in use");
        await InsertMediumAsync(backend, node).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>blockdev-change-medium</c>: opens <paramref name="filename"/> as the drive's earlier medium was opened (its
    /// read-only, cache, aio, discard and detect-zeroes settings; <paramref name="format"/> probed when null;
    /// <paramref name="readOnlyMode"/> may override read-only), then opens the tray, removes the old medium, inserts
    /// the new one and closes the tray, with a <see cref="DeviceTrayMovedEvent"/> for each move. Any failure closes the
    /// new image and leaves the drive as the failing step left it, as in QEMU.
    /// </summary>
    /// <exception cref="BlockException">A lookup error; the image's open error; "Device 'x' is not removable"; "Device
    /// 'x' is locked and force was not specified, wait for tray to open and try again"; the removal's and insertion's
    /// errors.</exception>
    public async ValueTask ChangeMediumAsync(string? device, string? id, string filename, string? format = null,
        BlockdevChangeReadOnlyMode readOnlyMode = BlockdevChangeReadOnlyMode.Retain, bool force = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filename);
        var backend = LookupDevice(device, id);
        string name = device ?? id!;
        backend.UpdateMediumOptions();
        var options = backend.MediumOptions with
        {
            Format = format,
            AllowProbing = true,
            ReadOnly = readOnlyMode switch
            {
                BlockdevChangeReadOnlyMode.ReadOnly => true,
                BlockdevChangeReadOnlyMode.ReadWrite => false,
                _ => backend.MediumOptions.ReadOnly,
            },
        };
        var medium = await OpenImageNodeAsync(filename, options, cancellationToken).ConfigureAwait(false);
        try
        {
            if (OpenTray(backend, name, force) == TrayOpening.Locked)
                throw LockedTray(name);
            await RemoveMediumAsync(backend, name).ConfigureAwait(false);
            await InsertMediumAsync(backend, medium).ConfigureAwait(false);
            CloseTray(backend, name);
        }
        finally
        {
            // Inserted, the drive holds the medium; otherwise nothing does and it closes.
            await ReleaseNodeAsync(medium).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// <c>eject</c>: opens the tray (see <see cref="OpenTray(string?, string?, bool)"/>) and removes the medium. A
    /// locked medium gets an eject request and, unless <paramref name="force"/>, the error QEMU gives.
    /// </summary>
    /// <exception cref="BlockException">A lookup error; "Device 'x' is not removable"; "Device 'x' is locked and force
    /// was not specified, wait for tray to open and try again"; the removal's errors.</exception>
    public async ValueTask EjectAsync(string? device, string? id, bool force = false)
    {
        var backend = LookupDevice(device, id);
        string name = device ?? id!;
        if (OpenTray(backend, name, force) == TrayOpening.Locked)
            throw LockedTray(name);
        await RemoveMediumAsync(backend, name).ConfigureAwait(false);
    }

    /// <summary>What opening a tray did (QEMU's <c>do_open_tray</c>).</summary>
    private enum TrayOpening
    {
        /// <summary>The tray is open (now or already).</summary>
        Open,

        /// <summary>No device, or a device without a tray: nothing to open.</summary>
        NoTray,

        /// <summary>The guest holds the medium locked: it was asked to eject, and the tray stays shut.</summary>
        Locked,
    }

    private TrayOpening OpenTray(BlockBackend backend, string name, bool force)
    {
        if (backend.Device is not { } model)
            return TrayOpening.NoTray;
        if (!model.IsRemovable)
            throw new BlockException(Errno.ENOTSUP, $"Device '{name}' is not removable");
        if (!model.HasTray)
            return TrayOpening.NoTray;
        if (model.IsTrayOpen)
            return TrayOpening.Open;
        bool locked = model.IsMediumLocked;
        if (locked)
            model.RequestEject(force);
        if (locked && !force)
            return TrayOpening.Locked;
        ChangeMedia(backend, load: false);
        return TrayOpening.Open;
    }

    private void CloseTray(BlockBackend backend, string name)
    {
        if (backend.Device is not { } model)
            return;
        if (!model.IsRemovable)
            throw new BlockException(Errno.ENOTSUP, $"Device '{name}' is not removable");
        if (!model.HasTray || !model.IsTrayOpen)
            return;
        ChangeMedia(backend, load: true);
    }

    private async ValueTask RemoveMediumAsync(BlockBackend backend, string name)
    {
        var model = backend.Device;
        if (model is { IsRemovable: false })
            throw new BlockException(Errno.ENOTSUP, $"Device '{name}' is not removable");
        if (model is { HasTray: true, IsTrayOpen: false })
            throw new BlockException(Errno.EINVAL, $"Tray of device '{name}' is not open");
        if (backend.Root is not { } root)
            return;
        ThrowIfBusy(root);
        backend.UpdateMediumOptions();
        BlockChild? edge;
        await using (await BeginDrainAsync().ConfigureAwait(false))
        {
            edge = backend.RootChild;
            backend.SetRoot(null);
            if (edge != null)
                await DetachAsync(edge).ConfigureAwait(false);
        }
        // A tray-less device has no tray to open first, so it learns of the removal here.
        if (model is { HasTray: false })
            ChangeMedia(backend, load: false);
    }

    private async ValueTask InsertMediumAsync(BlockBackend backend, BlockNode node)
    {
        var model = backend.Device;
        if (model is { IsRemovable: false })
            throw new BlockException(Errno.ENOTSUP, "Device is not removable");
        if (model is { HasTray: true, IsTrayOpen: false })
            throw new BlockException(Errno.EINVAL, "Tray of the device is not open");
        if (backend.Root != null)
            throw new BlockException(Errno.EEXIST, "There already is a medium in the device");
        var perm = node.ReadOnly ? BlockPermissions.ConsistentRead : BlockPermissions.ConsistentRead | BlockPermissions.Write;
        await using (await BeginDrainAsync().ConfigureAwait(false))
            backend.SetRoot(AttachChild(backend, "root", node, ChildRole.Image, (perm, backend.Options.SharedPermissions)));
        if (model is { HasTray: false })
            ChangeMedia(backend, load: true);
    }

    /// <summary>
    /// Tells the device its medium was loaded or unloaded, and raises <see cref="DeviceTrayMovedEvent"/> if its tray
    /// moved (QEMU's <c>blk_dev_change_media_cb</c>).
    /// </summary>
    private void ChangeMedia(BlockBackend backend, bool load)
    {
        if (backend.Device is not { } model)
            return;
        bool wasOpen = model.HasTray && model.IsTrayOpen;
        model.ChangeMedia(load);
        bool isOpen = model.HasTray && model.IsTrayOpen;
        if (wasOpen != isOpen)
            RaiseEvent(new DeviceTrayMovedEvent(backend.Name, model.Id, isOpen));
    }

    private static BlockException LockedTray(string name) =>
        new(Errno.EBUSY, $"Device '{name}' is locked and force was not specified, wait for tray to open and try again");
}
