using Block.Devices;
using Block.Graph;
using Block.Options;

namespace Block.Cli.Serve;

/// <summary>
/// <c>--device</c> in QEMU's <c>-device</c> syntax: a guest device on a <c>--drive</c>, from the two ready models
/// (<c>virtio-blk-pci</c> a fixed disk; <c>ide-cd</c> and <c>scsi-cd</c> a CD-ROM with a tray). Bus placement
/// (<c>bus</c>, <c>addr</c>…) and controllers such as <c>virtio-scsi-pci</c> mean nothing without a machine and
/// are accepted as such.
/// </summary>
internal static class DeviceOption
{
    /// <summary>Attaches the device described by <paramref name="text"/> to its drive.</summary>
    /// <exception cref="BlockException">An unknown device type, a missing id or drive, or a drive already in use.</exception>
    public static void Add(BlockGraph graph, string text)
    {
        var tree = KeyValueParser.Parse(text, impliedKey: "driver");
        var reader = new OptionsReader(tree, keyval: true);
        string driver = reader.String("driver") ?? throw new BlockOptionsException("Parameter 'driver' is missing");
        foreach (var placement in new[] { "bus", "addr", "unit", "channel", "scsi-id", "lun", "bootindex" })
            reader.Skip(placement);
        if (driver is "virtio-scsi-pci" or "ich9-ahci" or "ahci")
        {
            // A controller holds no backend: device commands given its id say so, as QEMU does.
            if (reader.String("id") is { } controller)
                graph.AddDeviceWithoutBackend(controller);
            reader.Finish();
            return;
        }
        string id = reader.String("id") ?? throw new BlockOptionsException($"blk serve needs an id for each {driver} device");
        string drive = reader.String("drive") ?? throw new BlockOptionsException($"Property '{driver}.drive' is required");
        reader.Finish();
        IBlockDeviceModel model = driver switch
        {
            "virtio-blk-pci" or "virtio-blk" => new FixedDiskModel(id),
            "ide-cd" or "scsi-cd" => new CdromModel(id),
            _ => throw new BlockOptionsException($"'{driver}' is not a valid device model name"),
        };
        var backend = graph.FindBackend(drive)
            ?? throw new BlockOptionsException($"Property '{driver}.drive' can't find value '{drive}'");
        backend.AttachDevice(model);
        // virtio-blk-pci's id names the PCI proxy; the backend belongs to the virtio-blk device inside it, which has
        // no id, so QEMU answers device commands given this id with "Device does not have a block device backend".
        if (driver is "virtio-blk-pci" or "virtio-blk")
            graph.AddDeviceWithoutBackend(id);
    }
}
