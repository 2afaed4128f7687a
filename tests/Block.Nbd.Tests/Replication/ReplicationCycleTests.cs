using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Drivers.Replication;
using Block.Graph;
using Block.Nbd.Client;
using Block.Nbd.Server;
using Block.Qcow2;
using Block.TestSupport;

namespace Block.Nbd.Tests.Replication;

/// <summary>
/// The whole COLO block cycle in one process: a primary graph (a <c>fifo</c> quorum over the local disk, with a
/// replication child whose file is an NBD client) writing into a secondary graph (the secondary disk exported by our
/// NBD server, under replication → active → hidden), with random guest writes on both sides between checkpoints, then
/// failover.
/// </summary>
public sealed class ReplicationCycleTests
{
    private const int Size = 4 << 20;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task After_failover_the_secondary_disk_is_the_last_checkpoint_plus_the_secondary_writes(int seed)
    {
        using var dir = new TempDirectory();
        var random = new Random(seed);
        byte[] initial = new byte[Size];
        random.NextBytes(initial);
        File.WriteAllBytes(dir.File("primary.img"), initial);
        File.WriteAllBytes(dir.File("secondary.img"), initial);
        await using var pair = await ReplicationPair.StartAsync(dir);

        // What the primary's disk holds, and what the secondary's guest must read: the last checkpoint and its own writes.
        byte[] primary = (byte[])initial.Clone();
        byte[] secondaryView = (byte[])initial.Clone();
        for (int round = 0; round < 4; round++)
        {
            for (int i = 0; i < 6; i++)
            {
                await WriteRandomAsync(random, pair.PrimaryGuest, primary);
                await WriteRandomAsync(random, pair.SecondaryGuest, secondaryView);
            }
            Assert.Equal(secondaryView, await ReadAllAsync(pair.SecondaryGuest));
            Assert.Equal(new ReplicationStatus(false), pair.Secondary.QueryReplicationStatus());

            await pair.Secondary.ReplicationCheckpointAsync();
            await pair.Primary.ReplicationCheckpointAsync();
            // At a checkpoint the secondary's guest drops its own writes and sees the primary's disk.
            secondaryView = (byte[])primary.Clone();
            Assert.Equal(secondaryView, await ReadAllAsync(pair.SecondaryGuest));
        }
        for (int i = 0; i < 5; i++)
        {
            await WriteRandomAsync(random, pair.PrimaryGuest, primary);
            await WriteRandomAsync(random, pair.SecondaryGuest, secondaryView);
        }

        await pair.Secondary.StopReplicationAsync(failover: true, waitForFailover: true);
        await pair.Primary.StopReplicationAsync(failover: false);

        Assert.Equal(new ReplicationStatus(false), pair.Secondary.QueryReplicationStatus());
        Assert.Null(pair.Secondary.GetReplicationStage("top"));
        Assert.Equal(ReplicationStage.Done, pair.Primary.GetReplicationStage("rep"));
        // The replication node now reads and writes the secondary disk itself; the active and hidden disks are gone.
        Assert.Same(pair.SecondaryDisk.Root, pair.Secondary.FindNode("top")!.PrimaryChild!.Node);
        Assert.Equal(secondaryView, await ReadAllAsync(pair.SecondaryGuest));
        await pair.DisposeAsync();
        Assert.Equal(secondaryView, File.ReadAllBytes(dir.File("secondary.img")));
        Assert.Equal(primary, File.ReadAllBytes(dir.File("primary.img")));
    }

    [Fact]
    public async Task Reads_of_the_primary_replication_node_fail_and_writes_pass_only_while_running()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("primary.img"), new byte[Size]);
        File.WriteAllBytes(dir.File("secondary.img"), new byte[Size]);
        await using var pair = await ReplicationPair.StartAsync(dir, startPrimary: false);
        var rep = pair.Primary.FindNode("rep")!;
        var buffer = new byte[4096];

        var before = await Assert.ThrowsAsync<BlockException>(async () => await rep.WriteAsync(0, buffer));
        Assert.Equal(Errno.EIO, before.Errno);
        await pair.Primary.StartReplicationAsync(ReplicationMode.Primary);
        buffer.AsSpan().Fill(0x5a);
        await rep.WriteAsync(0, buffer);
        var read = await Assert.ThrowsAsync<BlockException>(async () => await rep.ReadAsync(0, new byte[4096]));
        Assert.Equal(Errno.EIO, read.Errno);
        // The write reached the secondary disk, and the secondary's guest does not see it: its hidden disk kept the old data.
        byte[] disk = new byte[4096];
        await pair.SecondaryDisk.ReadAsync(0, disk);
        Assert.Equal(buffer, disk);
        byte[] guest = new byte[4096];
        await pair.SecondaryGuest.ReadAsync(0, guest);
        Assert.Equal(new byte[4096], guest);
    }

    [Fact]
    public async Task Stopping_the_secondary_without_failover_drops_its_writes_and_keeps_the_primarys()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("primary.img"), new byte[Size]);
        File.WriteAllBytes(dir.File("secondary.img"), new byte[Size]);
        await using var pair = await ReplicationPair.StartAsync(dir);
        var random = new Random(5);
        byte[] primary = new byte[Size];
        byte[] secondaryView = new byte[Size];
        for (int i = 0; i < 8; i++)
        {
            await WriteRandomAsync(random, pair.PrimaryGuest, primary);
            await WriteRandomAsync(random, pair.SecondaryGuest, secondaryView);
        }

        await pair.Secondary.StopReplicationAsync(failover: false);

        Assert.Equal(ReplicationStage.Done, pair.Secondary.GetReplicationStage("top"));
        Assert.Equal(new ReplicationStatus(false), pair.Secondary.QueryReplicationStatus());
        // The active and hidden disks are empty: the guest reads the secondary disk, which holds what the primary wrote.
        Assert.Equal(primary, await ReadAllAsync(pair.SecondaryGuest));
        await pair.Secondary.ReplicationCheckpointAsync();
        var again = await Assert.ThrowsAsync<BlockException>(async () => await pair.Secondary.StartReplicationAsync(ReplicationMode.Secondary));
        Assert.Equal("Block replication is running or done", again.Message);
    }

    [Fact]
    public async Task Commands_before_start_fail_in_qemus_words()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("primary.img"), new byte[Size]);
        File.WriteAllBytes(dir.File("secondary.img"), new byte[Size]);
        await using var pair = await ReplicationPair.StartAsync(dir, startPrimary: false);

        Assert.Equal(new ReplicationStatus(true, "Block replication is not running"), pair.Primary.QueryReplicationStatus());
        var stop = await Assert.ThrowsAsync<BlockException>(async () => await pair.Primary.StopReplicationAsync(failover: false));
        Assert.Equal("Block replication is not running", stop.Message);
        // With failover the stop is quiet, whatever the state.
        await pair.Primary.StopReplicationAsync(failover: true);
        var mode = await Assert.ThrowsAsync<BlockException>(async () => await pair.Primary.StartReplicationAsync(ReplicationMode.Secondary));
        Assert.Equal("The parameter mode's value is invalid, needs 0, but got 1", mode.Message);
        var twice = await Assert.ThrowsAsync<BlockException>(async () => await pair.Secondary.StartReplicationAsync(ReplicationMode.Secondary));
        Assert.Equal("Block replication is running or done", twice.Message);
    }

    [Fact]
    public async Task A_failover_whose_commit_fails_writes_only_where_the_active_disk_holds_data()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("primary.img"), new byte[Size]);
        File.WriteAllBytes(dir.File("secondary.img"), new byte[Size]);
        // Every data read of the active disk fails: the failover commit cannot read what it must copy.
        var failingActive = new JsonObject
        {
            ["driver"] = "blkdebug",
            ["image"] = new JsonObject { ["driver"] = "file", ["filename"] = dir.File("active.qcow2") },
            ["inject-error"] = new JsonArray(new JsonObject { ["event"] = "read_aio", ["errno"] = 5, ["iotype"] = "read" }),
        };
        await using var pair = await ReplicationPair.StartAsync(dir, activeFile: failingActive);
        byte[] cluster = new byte[65536];
        cluster.AsSpan().Fill(0x61);
        await pair.SecondaryGuest.WriteAsync(0, cluster);

        var failed = await Assert.ThrowsAsync<BlockException>(async () => await pair.Secondary.StopReplicationAsync(failover: true, waitForFailover: true));
        Assert.Equal("I/O error occurred", failed.Message);
        Assert.Equal(ReplicationStage.FailoverFailed, pair.Secondary.GetReplicationStage("top"));
        Assert.Equal(new ReplicationStatus(true, "I/O error occurred"), pair.Secondary.QueryReplicationStatus());
        var checkpoint = await Assert.ThrowsAsync<BlockException>(async () => await pair.Secondary.ReplicationCheckpointAsync());
        Assert.Equal("I/O error occurred", checkpoint.Message);

        // A cluster the active disk holds is written there; one it does not goes straight into the secondary disk.
        byte[] data = new byte[2 * 65536];
        data.AsSpan().Fill(0x62);
        await pair.SecondaryGuest.WriteAsync(1 << 20, data);
        await pair.SecondaryGuest.WriteAsync(0, data.AsMemory(0, 4096));
        byte[] disk = new byte[data.Length];
        await pair.SecondaryDisk.ReadAsync(1 << 20, disk);
        Assert.Equal(data, disk);
        byte[] head = new byte[4096];
        await pair.SecondaryDisk.ReadAsync(0, head);
        Assert.Equal(new byte[4096], head);
    }

    private static async Task WriteRandomAsync(Random random, BlockBackend guest, byte[] model)
    {
        int sector = 512;
        int length = random.Next(1, 64) * sector * (random.Next(4) == 0 ? 16 : 1);
        long offset = (long)random.Next(0, (Size - length) / sector) * sector;
        byte[] data = new byte[length];
        random.NextBytes(data);
        await guest.WriteAsync(offset, data);
        data.CopyTo(model, offset);
    }

    private static async Task<byte[]> ReadAllAsync(BlockBackend guest)
    {
        byte[] all = new byte[Size];
        await guest.ReadAsync(0, all);
        return all;
    }

    /// <summary>The two graphs: primary and secondary, wired through an NBD export on a unix socket, both started.</summary>
    private sealed class ReplicationPair : IAsyncDisposable
    {
        private readonly NbdServer _server;
        private bool _disposed;

        private ReplicationPair(BlockGraph primary, BlockGraph secondary, NbdServer server)
        {
            Primary = primary;
            Secondary = secondary;
            _server = server;
        }

        public BlockGraph Primary { get; }

        public BlockGraph Secondary { get; }

        public BlockBackend PrimaryGuest { get; private set; } = null!;

        public BlockBackend SecondaryGuest { get; private set; } = null!;

        public BlockBackend SecondaryDisk { get; private set; } = null!;

        public static async Task<ReplicationPair> StartAsync(TempDirectory dir, bool startPrimary = true, JsonObject? activeFile = null)
        {
            QemuImg.Create("qcow2", dir.File("active.qcow2"), Size.ToString(System.Globalization.CultureInfo.InvariantCulture));
            QemuImg.Create("qcow2", dir.File("hidden.qcow2"), Size.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var secondary = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2().AddNbd() });
            var primary = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2().AddNbd() });
            var server = new NbdServer();
            var pair = new ReplicationPair(primary, secondary, server);
            try
            {
                pair.SecondaryDisk = await secondary.OpenImageAsync(dir.File("secondary.img"), new ImageOpenOptions
                {
                    Format = "raw",
                    Backend = new BlockBackendOptions { Name = "sec-disk" },
                });
                var top = await secondary.AddNodeAsync(secondary.Parser.ParseJson(new JsonObject
                {
                    ["driver"] = "replication",
                    ["node-name"] = "top",
                    ["mode"] = "secondary",
                    ["top-id"] = "top-disk",
                    ["file"] = new JsonObject
                    {
                        ["driver"] = "qcow2",
                        ["file"] = activeFile ?? new JsonObject { ["driver"] = "file", ["filename"] = dir.File("active.qcow2") },
                        ["backing"] = new JsonObject
                        {
                            ["driver"] = "qcow2",
                            ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = dir.File("hidden.qcow2") },
                            ["backing"] = "sec-disk",
                        },
                    },
                }));
                pair.SecondaryGuest = secondary.CreateBackend(top, new BlockBackendOptions
                {
                    Name = "top-disk",
                    Permissions = BlockPermissions.ConsistentRead | BlockPermissions.Write,
                });
                string socket = dir.File("nbd.sock");
                server.AddExport(NbdExport.Create(secondary, "sec-disk", null, writable: true));
                server.Listen(NbdServer.BindUnix(socket), socket);
                await secondary.StartReplicationAsync(ReplicationMode.Secondary);

                var colo = await primary.AddNodeAsync(primary.Parser.ParseJson(new JsonObject
                {
                    ["driver"] = "quorum",
                    ["node-name"] = "colo",
                    ["read-pattern"] = "fifo",
                    ["vote-threshold"] = 1,
                    ["children"] = new JsonArray(new JsonObject
                    {
                        ["driver"] = "raw",
                        ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = dir.File("primary.img") },
                    }),
                }));
                pair.PrimaryGuest = primary.CreateBackend(colo, new BlockBackendOptions
                {
                    Name = "colo-disk",
                    Permissions = BlockPermissions.ConsistentRead | BlockPermissions.Write,
                });
                await primary.AddNodeAsync(primary.Parser.ParseJson(new JsonObject
                {
                    ["driver"] = "replication",
                    ["node-name"] = "rep",
                    ["mode"] = "primary",
                    ["file"] = new JsonObject
                    {
                        ["driver"] = "nbd",
                        ["server"] = new JsonObject { ["type"] = "unix", ["path"] = socket },
                        ["export"] = "sec-disk",
                    },
                }));
                await primary.ChangeChildAsync("colo", null, "rep");
                if (startPrimary)
                    await primary.StartReplicationAsync(ReplicationMode.Primary);
                return pair;
            }
            catch
            {
                await pair.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_disposed)
                return;
            _disposed = true;
            await Primary.DisposeAsync();
            await _server.DisposeAsync();
            await Secondary.DisposeAsync();
        }
    }
}
