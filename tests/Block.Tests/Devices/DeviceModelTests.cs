using Block.Devices;
using Block.Events;
using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Tests.Devices;

/// <summary>The ready device models on a backend: what query-block shows, trays, locks, eject requests and resizes.</summary>
public sealed class DeviceModelTests
{
    private static async Task<(BlockGraph Graph, BlockBackend Backend)> BackendAsync(string name = "cd0", BlockdevOnError werror = BlockdevOnError.Enospc)
    {
        var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(graph.Parser.ParseKeyValue("driver=null-co,node-name=n,size=1M"));
        return (graph, graph.CreateBackend(node, new BlockBackendOptions { Name = name, WriteErrorPolicy = werror }));
    }

    [Fact]
    public async Task A_locked_cdrom_tray_stays_shut_and_asks_the_guest_unless_forced()
    {
        var (graph, backend) = await BackendAsync();
        await using var _ = graph;
        var cd = new CdromModel("ide0");
        backend.AttachDevice(cd);
        var events = new List<BlockEvent>();
        graph.EventRaised += events.Add;
        cd.SetMediumLocked(true);
        Assert.False(graph.OpenTray(null, "ide0", force: false));
        Assert.True(cd.EjectRequested);
        var e = await Assert.ThrowsAsync<BlockException>(() => graph.EjectAsync(null, "ide0").AsTask());
        Assert.Equal("Device 'ide0' is locked and force was not specified, wait for tray to open and try again", e.Message);
        Assert.False(cd.IsTrayOpen);
        Assert.Empty(events);
        graph.OpenTray("cd0", null, force: true);
        Assert.True(cd.IsTrayOpen);
        Assert.Equal([new DeviceTrayMovedEvent("cd0", "ide0", true) { Timestamp = events[0].Timestamp }], events);
        Assert.Equal((true, false, (bool?)true), (backend.GetInfo().Removable, backend.GetInfo().Locked, backend.GetInfo().TrayOpen));
    }

    [Fact]
    public async Task A_fixed_disk_is_not_removable_has_no_tray_reports_io_status_and_hears_of_resizes()
    {
        using var dir = new TempDirectory();
        string path = dir.File("d.img");
        File.WriteAllBytes(path, new byte[1 << 20]);
        var graph = new BlockGraph();
        await using var _ = graph;
        var node = await graph.AddNodeAsync(graph.Parser.ParseKeyValue($"driver=file,node-name=f,filename={path}"));
        var backend = graph.CreateBackend(node, new BlockBackendOptions { Name = "d0" });
        var disk = new FixedDiskModel("vd0");
        backend.AttachDevice(disk);
        var info = backend.GetInfo();
        Assert.Equal((false, (bool?)null, (BlockDeviceIoStatus?)BlockDeviceIoStatus.Ok), (info.Removable, info.TrayOpen, info.IoStatus));
        Assert.Equal("Device 'd0' is not removable", Assert.Throws<BlockException>(() => graph.OpenTray("d0", null, false)).Message);
        await graph.ResizeAsync("d0", null, 2 << 20);
        Assert.Equal(1, disk.ResizeCount);
        Assert.Throws<BlockException>(() => backend.AttachDevice(new CdromModel("x")));
    }

    [Fact]
    public async Task Io_status_shows_only_when_an_error_policy_can_stop()
    {
        var (graph, backend) = await BackendAsync("d0", BlockdevOnError.Report);
        await using var _ = graph;
        backend.AttachDevice(new FixedDiskModel("vd0"));
        Assert.Null(backend.GetInfo().IoStatus);
    }
}
