using System.Globalization;
using Block.Drivers;
using Block.Graph;
using Block.Ssh.Driver;
using Block.Ssh.Options;
using Block.Ssh.Sftp;
using Block.TestSupport;

namespace Block.Ssh.Tests;

/// <summary>Our SFTP client on libssh against OpenSSH's sftp-server: flush, many requests in flight, the end of the file.</summary>
[Collection(SshServerCollection.Name)]
public sealed class SftpChannelTests(SshServer server)
{
    private static readonly TimeSpan s_hang = TimeSpan.FromSeconds(120);

    private BlockdevOptionsSsh Options(string path) => new()
    {
        Server = new SshServerAddress("127.0.0.1", server.Port.ToString(CultureInfo.InvariantCulture)),
        Path = path,
        HostKeyCheck = SshHostKeyCheck.None,
        IdentityFile = server.UserKeyPath,
    };

    private SshDriverOptions DriverOptions => new() { AgentSocket = server.AgentSocket };

    private TestGraph Graph() =>
        new(new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddSsh(DriverOptions) }));

    private System.Text.Json.Nodes.JsonObject NodeOptions(string path) => new()
    {
        ["driver"] = "raw",
        ["file"] = new System.Text.Json.Nodes.JsonObject
        {
            ["driver"] = "ssh",
            ["server"] = new System.Text.Json.Nodes.JsonObject { ["host"] = "127.0.0.1", ["port"] = server.Port.ToString(CultureInfo.InvariantCulture) },
            ["path"] = path,
            ["host-key-check"] = new System.Text.Json.Nodes.JsonObject { ["mode"] = "none" },
        },
    };

    [Fact]
    public async Task A_flush_sends_fsync_at_openssh_com_for_the_file_and_warns_of_nothing()
    {
        string path = server.Directory.File($"{Guid.NewGuid():N}.raw");
        TestSupport.QemuImg.Create("raw", path, "1M");
        using var graph = Graph();
        var warnings = new List<string>();
        graph.Graph.WarningRaised += warnings.Add;
        var backend = await graph.Graph.OpenImageAsync(NodeOptions(path));
        await backend.WriteAsync(4096, new byte[4096]);
        await backend.FlushAsync();
        Assert.Empty(warnings);
        // sftp-server logs the request it served: fsync(2) of the open file on the server.
        Assert.Contains($"fsync \"{path}\"", File.ReadAllText(server.SftpLogPath), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Megabyte_reads_and_writes_in_flight_together_neither_stall_nor_mix_their_bytes()
    {
        string path = server.Directory.File($"{Guid.NewGuid():N}.raw");
        const int mib = 1 << 20;
        var original = new byte[32 * mib];
        new Random(7).NextBytes(original);
        File.WriteAllBytes(path, original);
        using var graph = Graph();
        var backend = await graph.Graph.OpenImageAsync(NodeOptions(path));

        // Even megabytes are read while odd ones are rewritten, all at once: more read data than one channel window.
        var reads = new byte[16][];
        var tasks = new List<Task>();
        for (int i = 0; i < 16; i++)
        {
            reads[i] = new byte[mib];
            tasks.Add(backend.ReadAsync(2L * i * mib, reads[i]).AsTask());
            var data = new byte[mib];
            Array.Fill(data, (byte)(i + 1));
            tasks.Add(backend.WriteAsync((2L * i + 1) * mib, data).AsTask());
        }
        await Task.WhenAll(tasks).WaitAsync(s_hang);
        await backend.FlushAsync();

        var file = File.ReadAllBytes(path);
        for (int i = 0; i < 16; i++)
        {
            Assert.True(original.AsSpan(2 * i * mib, mib).SequenceEqual(reads[i]), $"read {i} differs");
            Assert.True(file.AsSpan(2 * i * mib, mib).SequenceEqual(original.AsSpan(2 * i * mib, mib)), $"megabyte {2 * i} changed");
            Assert.True(file.AsSpan((2 * i + 1) * mib, mib).IndexOfAnyExcept((byte)(i + 1)) < 0, $"write {i} is not on the server");
        }
    }

    [Fact]
    public async Task A_read_across_the_end_of_the_file_gets_its_bytes_then_zeroes()
    {
        string path = server.Directory.File($"{Guid.NewGuid():N}.raw");
        var content = new byte[100_000];
        new Random(3).NextBytes(content);
        File.WriteAllBytes(path, content);
        using var connection = await SshConnection.ConnectAsync(Options(path), DriverOptions, CancellationToken.None);
        var handle = await connection.Channel.OpenAsync(path, SftpOpenFlags.Read, permissions: null);
        Assert.Equal(100_000, await connection.Channel.SizeAsync(handle));
        var buffer = new byte[300_000];
        Array.Fill(buffer, (byte)0xee);
        await connection.Channel.ReadAsync(handle, 0, buffer.AsMemory());
        Assert.True(buffer.AsSpan(0, 100_000).SequenceEqual(content));
        Assert.True(buffer.AsSpan(100_000).IndexOfAnyExcept((byte)0) < 0);
        await connection.Channel.CloseAsync(handle);
    }

    [Fact]
    public async Task An_upload_of_sequential_megabyte_writes_never_leaves_a_reply_waiting_for_the_poll_timeout()
    {
        string path = server.Directory.File($"{Guid.NewGuid():N}.raw");
        using var connection = await SshConnection.ConnectAsync(Options(path), DriverOptions, CancellationToken.None);
        var channel = connection.Channel;
        var handle = await channel.OpenAsync(path, SftpOpenFlags.Read | SftpOpenFlags.Write | SftpOpenFlags.Create | SftpOpenFlags.Truncate, permissions: 420);
        var data = new byte[1 << 20];
        new Random(5).NextBytes(data);
        for (int i = 0; i < 64; i++)
            await channel.WriteAsync(handle, (long)i << 20, data.AsMemory()).AsTask().WaitAsync(s_hang);
        for (int i = 0; i < 64; i++)
            await channel.ReadAsync(handle, (long)i << 20, data.AsMemory()).AsTask().WaitAsync(s_hang);
        await channel.CloseAsync(handle);
        Assert.Equal(64L << 20, new FileInfo(path).Length);
        Assert.Equal(0, channel.MissedWakeups);
    }

    [Fact]
    public async Task A_missing_file_fails_to_open_with_qemus_message()
    {
        string path = server.Directory.File("absent.raw");
        using var connection = await SshConnection.ConnectAsync(Options(path), DriverOptions, CancellationToken.None);
        var e = await Assert.ThrowsAsync<BlockException>(() => connection.Channel.OpenAsync(path, SftpOpenFlags.Read, null));
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Equal($"failed to open remote file '{path}': SFTP server: No such file (libssh error code: 1, sftp error code: 2)", e.Message);
    }
}
