using Block.Devices;
using Block.Events;
using Block.Graph;
using Block.Qapi;

namespace Block.Tests.Devices;

/// <summary>
/// Removable media in the library: removing, inserting, changing and ejecting by backend name or device id, empty
/// drives, and the tray events, with QEMU's rules (the QMP side is compared with qemu-system-x86_64 in
/// <c>DeviceOracleTests</c>).
/// </summary>
public sealed class RemovableMediaTests
{
    private static BlockGraph NewGraph(List<BlockEvent> events)
    {
        var graph = new BlockGraph();
        graph.EventRaised += events.Add;
        return graph;
    }

    private static List<(bool? TrayOpen, string Device)> Trays(List<BlockEvent> events) =>
        [.. events.OfType<DeviceTrayMovedEvent>().Select(e => ((bool?)e.TrayOpen, e.Device))];

    [Fact]
    public async Task A_cdrom_medium_comes_out_only_through_an_open_tray_by_name_or_id_and_a_new_one_goes_in()
    {
        var events = new List<BlockEvent>();
        await using var graph = NewGraph(events);
        var old = await graph.AddNodeAsync(graph.Parser.ParseKeyValue("driver=null-co,node-name=old,size=1M,read-only=on"));
        await graph.AddNodeAsync(graph.Parser.ParseKeyValue("driver=null-co,node-name=new,size=2M,read-only=on"));
        var backend = graph.CreateBackend(old, new BlockBackendOptions { Name = "cd0" });
        var cd = new CdromModel("ide0");
        backend.AttachDevice(cd);

        var e = await Assert.ThrowsAnyAsync<BlockException>(() => graph.RemoveMediumAsync("cd0", null).AsTask());
        Assert.Equal("Tray of device 'cd0' is not open", e.Message);
        Assert.True(graph.OpenTray(null, "ide0", force: false));
        await graph.RemoveMediumAsync("cd0", null);
        Assert.Null(backend.Root);
        Assert.NotNull(graph.FindNode("old"));
        await graph.RemoveMediumAsync(null, "ide0");
        await Assert.ThrowsAnyAsync<BlockException>(() => backend.ReadAsync(0, new byte[512]).AsTask());

        e = await Assert.ThrowsAnyAsync<BlockException>(() => graph.InsertMediumAsync("cd0", null, "nope").AsTask());
        Assert.Equal("Node 'nope' not found", e.Message);
        await graph.InsertMediumAsync("cd0", null, "new");
        e = await Assert.ThrowsAnyAsync<BlockException>(() => graph.InsertMediumAsync("cd0", null, "new").AsTask());
        Assert.Equal("Node 'new' is already in use", e.Message);
        e = await Assert.ThrowsAnyAsync<BlockException>(() => graph.InsertMediumAsync("cd0", null, "old").AsTask());
        Assert.Equal("There already is a medium in the device", e.Message);
        graph.CloseTray("cd0", null);
        e = await Assert.ThrowsAnyAsync<BlockException>(() => graph.InsertMediumAsync(null, "ide0", "old").AsTask());
        Assert.Equal("Tray of the device is not open", e.Message);

        Assert.Equal(2 << 20, backend.Length);
        await backend.ReadAsync(0, new byte[512]);
        Assert.Equal([(true, "cd0"), (false, "cd0")], Trays(events));
        Assert.Equal((false, "new"), (backend.GetInfo().TrayOpen ?? true, backend.GetInfo().Inserted!.NodeName));
    }

    [Fact]
    public async Task A_fixed_disk_refuses_every_medium_operation_as_not_removable()
    {
        var events = new List<BlockEvent>();
        await using var graph = NewGraph(events);
        var node = await graph.AddNodeAsync(graph.Parser.ParseKeyValue("driver=null-co,node-name=n,size=1M"));
        graph.CreateBackend(node, new BlockBackendOptions { Name = "d0" }).AttachDevice(new FixedDiskModel("vd0"));
        await graph.AddNodeAsync(graph.Parser.ParseKeyValue("driver=null-co,node-name=other,size=1M"));

        Assert.Equal("Device 'd0' is not removable", (await Assert.ThrowsAnyAsync<BlockException>(() => graph.RemoveMediumAsync("d0", null).AsTask())).Message);
        Assert.Equal("Device 'vd0' is not removable", (await Assert.ThrowsAnyAsync<BlockException>(() => graph.EjectAsync(null, "vd0").AsTask())).Message);
        Assert.Equal("Device is not removable", (await Assert.ThrowsAnyAsync<BlockException>(() => graph.InsertMediumAsync("d0", null, "other").AsTask())).Message);
        Assert.Equal("Device 'd0' is not removable",
            (await Assert.ThrowsAnyAsync<BlockException>(() => graph.ChangeMediumAsync("d0", null, "null-co://", "null-co").AsTask())).Message);
        Assert.NotNull(graph.FindBackend("d0")!.Root);
        Assert.Null(graph.FindNode("null-co://"));
        Assert.Empty(events);
    }

    [Fact]
    public async Task A_drive_without_a_device_swaps_media_at_any_time_without_tray_events()
    {
        var events = new List<BlockEvent>();
        await using var graph = NewGraph(events);
        var backend = graph.CreateEmptyBackend(new ImageOpenOptions { ReadOnly = true, Backend = new BlockBackendOptions { Name = "n0" } });
        Assert.Equal((true, false, (bool?)null, (BlockDeviceInfo?)null), (backend.GetInfo().Removable, backend.GetInfo().Locked, backend.GetInfo().TrayOpen, backend.GetInfo().Inserted));

        await graph.EjectAsync("n0", null);
        await graph.ChangeMediumAsync("n0", null, "null-co://", "null-co");
        Assert.True(backend.GetInfo().Inserted!.ReadOnly);
        var first = backend.Root!;
        await graph.ChangeMediumAsync("n0", null, "null-co://", "null-co", BlockdevChangeReadOnlyMode.ReadWrite);
        Assert.False(backend.GetInfo().Inserted!.ReadOnly);
        Assert.False(first.IsOpen);
        await backend.WriteAsync(0, new byte[512]);
        await graph.RemoveMediumAsync("n0", null);
        Assert.Null(backend.Root);
        Assert.Empty(graph.Nodes);
        Assert.Empty(events);
    }

    [Fact]
    public async Task Change_medium_moves_a_cdrom_tray_open_then_shut_and_a_failed_open_leaves_the_old_medium()
    {
        var events = new List<BlockEvent>();
        await using var graph = NewGraph(events);
        var backend = graph.CreateEmptyBackend(new ImageOpenOptions { ReadOnly = true, Backend = new BlockBackendOptions { Name = "cd0" } });
        var cd = new CdromModel("scd0");
        backend.AttachDevice(cd);

        await graph.ChangeMediumAsync(null, "scd0", "null-co://", "null-co");
        Assert.Equal([(true, "cd0"), (false, "cd0")], Trays(events));
        var medium = backend.Root;
        var e = await Assert.ThrowsAnyAsync<BlockException>(() => graph.ChangeMediumAsync("cd0", null, "null-co://", "bogus").AsTask());
        Assert.Equal("Unknown driver 'bogus'", e.Message);
        Assert.Same(medium, backend.Root);
        Assert.Equal(2, Trays(events).Count);

        cd.SetMediumLocked(true);
        e = await Assert.ThrowsAnyAsync<BlockException>(() => graph.ChangeMediumAsync("cd0", null, "null-co://", "null-co").AsTask());
        Assert.Equal("Device 'cd0' is locked and force was not specified, wait for tray to open and try again", e.Message);
        Assert.Same(medium, backend.Root);
        Assert.Single(graph.Nodes);
        Assert.True(cd.EjectRequested);

        await graph.EjectAsync("cd0", null, force: true);
        Assert.Null(backend.Root);
        Assert.Empty(graph.Nodes);
        Assert.Equal([(true, "cd0"), (false, "cd0"), (true, "cd0")], Trays(events));
    }
}
