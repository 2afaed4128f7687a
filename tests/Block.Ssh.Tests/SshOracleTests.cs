using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Graph;
using Block.Qcow2;
using Block.TestSupport;

namespace Block.Ssh.Tests;

/// <summary>blk and qemu-img/qemu-io 7.2 on the same images over <c>ssh://</c> to a throwaway sshd.</summary>
[Collection(SshServerCollection.Name)]
public sealed class SshOracleTests
{
    private readonly SshServer _server;

    public SshOracleTests(SshServer server)
    {
        _server = server;
        // blk in-process finds the agent as QEMU does, through the environment; only this assembly's tests run here.
        Environment.SetEnvironmentVariable("SSH_AUTH_SOCK", server.AgentSocket);
    }

    private ProcessResult QemuImg(params string[] args) =>
        ProcessRunner.Run(TestSupport.QemuImg.Path, args, TimeSpan.FromMinutes(5), environment: _server.QemuEnvironment);

    private ProcessResult QemuIo(string image, params string[] commands)
    {
        var args = new List<string> { "-f", "raw" };
        foreach (var c in commands)
            args.AddRange(["-c", c]);
        args.Add(image);
        return ProcessRunner.Run(TestSupport.QemuIo.Path, args, TimeSpan.FromMinutes(5), environment: _server.QemuEnvironment);
    }

    private string NewName(string ext) => $"{Guid.NewGuid():N}.{ext}";

    [Fact]
    public void Info_over_ssh_matches_qemu_img()
    {
        string name = NewName("qcow2");
        TestSupport.QemuImg.Create("qcow2", _server.Directory.File(name), "64M");
        string uri = _server.Uri(name);
        var ours = BlkRunner.Run("info", "--output=json", uri);
        var theirs = QemuImg("info", "--output=json", uri);
        Assert.Equal(0, theirs.ExitCode);
        Assert.Equal(0, ours.ExitCode);
        Assert.Equal(theirs.Stdout, ours.Stdout);
    }

    [Fact]
    public void Blk_reads_what_qemu_io_wrote_over_ssh_and_qemu_io_reads_what_blk_wrote()
    {
        string name = NewName("raw");
        TestSupport.QemuImg.Create("raw", _server.Directory.File(name), "8M");
        string uri = _server.Uri(name);
        Assert.Equal(0, QemuIo(uri, "write -P 0x5a 0 1M", "write -P 0x33 3M 512").ExitCode);
        var read = BlkRunner.Run("io", "-f", "raw", "-c", "read -P 0x5a 0 1M", "-c", "read -P 0x33 3M 512", "-c", "read -P 0 1M 2M", uri);
        Assert.True(read.ExitCode == 0 && !read.Stdout.Contains("Pattern verification failed", StringComparison.Ordinal), read.Stdout + read.Stderr);
        var write = BlkRunner.Run("io", "-f", "raw", "-c", "write -P 0xc3 4M 1M", "-c", "write -P 0x11 7M 4k", uri);
        Assert.Equal(0, write.ExitCode);
        var check = QemuIo(uri, "read -P 0xc3 4M 1M", "read -P 0x11 7M 4k", "read -P 0x5a 0 1M");
        Assert.True(check.ExitCode == 0 && !check.Stdout.Contains("Pattern verification failed", StringComparison.Ordinal), check.Stdout + check.Stderr);
    }

    [Fact]
    public void Convert_to_ssh_and_back_gives_images_qemu_img_finds_identical()
    {
        string local = _server.Directory.File(NewName("qcow2"));
        TestSupport.QemuImg.Create("qcow2", local, "32M");
        TestSupport.QemuIo.RunChecked(local, "qcow2", "write -P 0x77 1M 3M", "write -P 0x99 20M 64k");

        string remoteName = NewName("raw");
        var up = BlkRunner.Run("convert", "-O", "raw", local, _server.Uri(remoteName));
        Assert.True(up.ExitCode == 0, up.Stderr);
        Assert.Equal(0, QemuImg("compare", "-f", "qcow2", "-F", "raw", local, _server.Directory.File(remoteName)).ExitCode);

        string back = _server.Directory.File(NewName("qcow2"));
        var down = BlkRunner.Run("convert", "-f", "raw", "-O", "qcow2", _server.Uri(remoteName), back);
        Assert.True(down.ExitCode == 0, down.Stderr);
        Assert.Equal(0, TestSupport.QemuImg.Check(back, "qcow2").ExitCode);
        Assert.Equal(0, QemuImg("compare", "-f", "qcow2", "-F", "raw", back, _server.Uri(remoteName)).ExitCode);
    }

    [Fact]
    public void Create_qcow2_over_ssh_gives_what_qemu_img_creates_over_ssh()
    {
        string ours = NewName("qcow2"), theirs = NewName("qcow2");
        var created = BlkRunner.Run("create", "-f", "qcow2", _server.Uri(ours), "64M");
        Assert.True(created.ExitCode == 0, created.Stderr);
        Assert.Equal(0, QemuImg("create", "-f", "qcow2", _server.Uri(theirs), "64M").ExitCode);
        // The same metadata byte for byte; QEMU's file ends in a zero tail that ours leaves to the server's EOF.
        byte[] a = File.ReadAllBytes(_server.Directory.File(theirs)), b = File.ReadAllBytes(_server.Directory.File(ours));
        Assert.Equal(a.AsSpan(0, b.Length).ToArray(), b);
        Assert.True(Array.TrueForAll(a[b.Length..], x => x == 0));
        Assert.Equal(0, TestSupport.QemuImg.Check(_server.Directory.File(ours), "qcow2").ExitCode);

        var raw = BlkRunner.Run("create", "-f", "raw", _server.Uri(ours + ".raw"), "5M");
        Assert.True(raw.ExitCode == 0, raw.Stderr);
        Assert.Equal(5L << 20, new FileInfo(_server.Directory.File(ours + ".raw")).Length);
    }

    [Fact]
    public void Resize_grows_over_ssh_and_shrinking_is_refused_with_qemus_message()
    {
        string name = NewName("raw");
        TestSupport.QemuImg.Create("raw", _server.Directory.File(name), "1M");
        Assert.Equal(0, BlkRunner.Run("resize", "-f", "raw", _server.Uri(name), "3M").ExitCode);
        Assert.Equal(3L << 20, new FileInfo(_server.Directory.File(name)).Length);
        var ours = BlkRunner.Run("resize", "-f", "raw", "--shrink", _server.Uri(name), "1M");
        var theirs = QemuImg("resize", "-f", "raw", "--shrink", _server.Uri(name), "1M");
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(BlkRunner.Normalize(theirs.Stderr), ours.Stderr);
    }

    [Theory]
    [InlineData("sha1")]
    [InlineData("md5")]
    [InlineData("sha256")]
    public void A_matching_fingerprint_is_accepted_and_a_wrong_one_refused_as_qemu_refuses_it(string type)
    {
        string name = NewName("raw");
        TestSupport.QemuImg.Create("raw", _server.Directory.File(name), "1M");
        string good = type switch { "sha1" => _server.Sha1Hex, "md5" => _server.Md5Colons, _ => _server.Sha256Hex };
        Assert.Equal(0, BlkRunner.Run("info", _server.Uri(name, $"{type}:{good}")).ExitCode);

        string wrong = _server.Uri(name, $"{type}:00{good}");
        var ours = BlkRunner.Run("info", wrong);
        var theirs = QemuImg("info", wrong);
        Assert.Equal(1, ours.ExitCode);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(BlkRunner.Normalize(theirs.Stderr), ours.Stderr);
    }

    [Fact]
    public void A_missing_file_is_refused_with_qemus_message()
    {
        string uri = _server.Uri("absent.raw");
        var ours = BlkRunner.Run("info", uri);
        var theirs = QemuImg("info", uri);
        Assert.Equal(1, theirs.ExitCode);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(BlkRunner.Normalize(theirs.Stderr), ours.Stderr);
    }

    [Fact]
    public void Without_a_usable_key_authentication_fails_with_qemus_message()
    {
        string name = NewName("raw");
        TestSupport.QemuImg.Create("raw", _server.Directory.File(name), "1M");
        string uri = $"ssh://nobody-{Guid.NewGuid():N}"[..20] + $"@127.0.0.1:{_server.Port}{_server.Directory.File(name)}?host_key_check=no";
        var ours = BlkRunner.Run("info", uri);
        var theirs = QemuImg("info", uri);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(BlkRunner.Normalize(theirs.Stderr), ours.Stderr);
    }

    private TestGraph Graph(SshDriverOptions options) =>
        new(new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2().AddSsh(options) }));

    private static async Task<BlockBackend> OpenAsync(TestGraph graph, JsonObject ssh) =>
        await graph.Graph.OpenImageAsync(new JsonObject { ["driver"] = "raw", ["file"] = ssh });

    private JsonObject SshOptions(string name, JsonObject? hostKeyCheck = null, string? identityFile = null)
    {
        var o = new JsonObject
        {
            ["driver"] = "ssh",
            ["server"] = new JsonObject { ["host"] = "127.0.0.1", ["port"] = _server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            ["path"] = _server.Directory.File(name),
            ["host-key-check"] = hostKeyCheck ?? new JsonObject { ["mode"] = "none" },
        };
        if (identityFile != null)
            o["identity-file"] = identityFile;
        return o;
    }

    [Fact]
    public async Task A_key_file_authenticates_without_an_agent_and_a_key_the_server_refuses_does_not()
    {
        string name = NewName("raw");
        TestSupport.QemuImg.Create("raw", _server.Directory.File(name), "1M");
        using var graph = Graph(new SshDriverOptions { AgentSocket = _server.Directory.File("no-agent.sock") });
        var backend = await OpenAsync(graph, SshOptions(name, identityFile: _server.UserKeyPath));
        Assert.Equal(1L << 20, backend.Length);
        var e = await Assert.ThrowsAnyAsync<BlockException>(() => OpenAsync(graph, SshOptions(name, identityFile: _server.OtherKeyPath)));
        Assert.Contains("failed to authenticate using publickey authentication", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Known_hosts_accepts_the_recorded_key_and_refuses_a_changed_or_missing_one_with_libssh_words()
    {
        string name = NewName("raw");
        TestSupport.QemuImg.Create("raw", _server.Directory.File(name), "1M");
        var knownHosts = new JsonObject { ["mode"] = "known_hosts" };
        using (var good = Graph(new SshDriverOptions { KnownHostsFiles = [_server.KnownHostsPath] }))
            Assert.Equal(1L << 20, (await OpenAsync(good, SshOptions(name, knownHosts))).Length);

        string changed = _server.Directory.File("changed_known_hosts");
        File.WriteAllText(changed, $"[127.0.0.1]:{_server.Port} {File.ReadAllText(_server.OtherKeyPath + ".pub")}");
        using (var graph = Graph(new SshDriverOptions { KnownHostsFiles = [changed] }))
        {
            var e = await Assert.ThrowsAnyAsync<BlockException>(() => OpenAsync(graph, SshOptions(name, knownHosts.DeepClone().AsObject())));
            Assert.Matches(@"host key \(ssh-ed25519 key with fingerprint SHA256:[A-Za-z0-9+/]{43}\) does not match the one in known_hosts; this may be a possible attack", e.Message);
        }
        using (var graph = Graph(new SshDriverOptions { KnownHostsFiles = [_server.Directory.File("absent")] }))
        {
            var e = await Assert.ThrowsAnyAsync<BlockException>(() => OpenAsync(graph, SshOptions(name, knownHosts.DeepClone().AsObject())));
            Assert.Contains("no host key was found in known_hosts", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Many_requests_in_flight_on_one_connection_read_and_write_the_right_bytes()
    {
        string name = NewName("raw");
        string path = _server.Directory.File(name);
        TestSupport.QemuImg.Create("raw", path, "16M");
        using var graph = Graph(new SshDriverOptions { AgentSocket = _server.AgentSocket });
        var backend = await OpenAsync(graph, SshOptions(name));
        const int chunk = 128 * 1024;
        var writes = Enumerable.Range(0, 64).Select(i =>
        {
            var data = new byte[chunk];
            Array.Fill(data, (byte)(i + 1));
            return backend.WriteAsync(i * (long)chunk * 2, data).AsTask();
        }).ToArray();
        await Task.WhenAll(writes).WaitAsync(TimeSpan.FromSeconds(60));
        await backend.FlushAsync();
        byte[] file = File.ReadAllBytes(path);
        for (int i = 0; i < 64; i++)
            Assert.All(file.AsSpan(i * chunk * 2, chunk).ToArray(), b => Assert.Equal((byte)(i + 1), b));

        var buffers = Enumerable.Range(0, 64).Select(_ => new byte[chunk]).ToArray();
        var reads = Enumerable.Range(0, 64).Select(i => backend.ReadAsync(i * (long)chunk * 2, buffers[i]).AsTask()).ToArray();
        await Task.WhenAll(reads).WaitAsync(TimeSpan.FromSeconds(60));
        for (int i = 0; i < 64; i++)
            Assert.Equal(file.AsSpan(i * chunk * 2, chunk).ToArray(), buffers[i]);
    }

    [Fact]
    public async Task A_dropped_connection_fails_requests_with_an_io_error()
    {
        string name = NewName("raw");
        TestSupport.QemuImg.Create("raw", _server.Directory.File(name), "1M");
        using var graph = Graph(new SshDriverOptions { AgentSocket = _server.AgentSocket });
        var before = _server.ConnectionPids().ToHashSet();
        var backend = await OpenAsync(graph, SshOptions(name));
        await backend.ReadAsync(0, new byte[4096]);
        foreach (var pid in _server.ConnectionPids().Where(p => !before.Contains(p)))
            System.Diagnostics.Process.GetProcessById(pid).Kill(entireProcessTree: true);
        var read = backend.ReadAsync(768 * 1024, new byte[64 * 1024]).AsTask();
        Assert.True(await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(60))) == read, "a read on a dropped connection hung");
        var e = await Assert.ThrowsAnyAsync<BlockException>(() => read);
        Assert.Equal(Errno.EIO, e.Errno);
    }
}
