using System.Globalization;
using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Graph;
using Block.TestSupport;

namespace Block.Ssh.Tests;

/// <summary>
/// A real sshd whose <c>sftp</c> subsystem is a small SFTP server of the test's that misbehaves on reads as the file
/// name asks: a reply longer than the request, a packet length of 2 GiB, a reply to a request never sent, a hang-up,
/// or (well-behaved but unusual) reads answered 1000 bytes at a time.
/// </summary>
public sealed class HostileSftpTests : IClassFixture<HostileSftpTests.Server>
{
    private static readonly TimeSpan s_hang = TimeSpan.FromSeconds(60);
    private readonly Server _server;

    public HostileSftpTests(Server server) => _server = server;

    /// <summary>The sshd with the misbehaving subsystem; the script serves a 1 MiB file whose byte at x is x mod 251.</summary>
    public sealed class Server : IDisposable
    {
        private const string Script = """
            import struct, sys
            inp, out = sys.stdin.buffer, sys.stdout.buffer
            mode = sys.argv[1] if len(sys.argv) > 1 else ''
            def exact(n):
                b = b''
                while len(b) < n:
                    c = inp.read(n - len(b))
                    if not c:
                        sys.exit(0)
                    b += c
                return b
            def send(t, payload):
                out.write(struct.pack('>IB', len(payload) + 1, t) + payload)
                out.flush()
            def string(b):
                return struct.pack('>I', len(b)) + b
            def pattern(off, n):
                return bytes((off + i) % 251 for i in range(n))
            while True:
                n, = struct.unpack('>I', exact(4))
                body = exact(n)
                t = body[0]
                if t == 1:
                    send(2, b'\x03' if mode == 'badversion' else struct.pack('>I', 3))
                    continue
                rid, = struct.unpack('>I', body[1:5])
                if t == 3:
                    plen, = struct.unpack('>I', body[5:9])
                    mode = body[9:9 + plen].decode().rsplit('/', 1)[-1]
                    send(102, struct.pack('>I', rid) + string(b'h'))
                elif t == 8:
                    send(105, struct.pack('>II', rid, 1) + struct.pack('>Q', 1 << 20))
                elif t == 4:
                    send(101, struct.pack('>II', rid, 0) + string(b'') + string(b''))
                elif t == 5:
                    hlen, = struct.unpack('>I', body[5:9])
                    off, ln = struct.unpack('>QI', body[9 + hlen:21 + hlen])
                    if mode == 'oversize':
                        send(103, struct.pack('>I', rid) + string(pattern(off, ln + 1)))
                    elif mode == 'huge':
                        out.write(struct.pack('>I', 0x7fffffff))
                        out.flush()
                    elif mode == 'wrongid':
                        send(103, struct.pack('>I', rid ^ 0x5500) + string(pattern(off, ln)))
                    elif mode == 'hangup':
                        sys.exit(0)
                    else:
                        send(103, struct.pack('>I', rid) + string(pattern(off, min(ln, 1000))))
                else:
                    send(101, struct.pack('>II', rid, 8) + string(b'unsupported') + string(b''))
            """;

        public Server()
        {
            Scratch = new TempDirectory();
            File.WriteAllText(Scratch.File("hostile.py"), Script);
            Ssh = new SshServer($"{Python()} {Scratch.File("hostile.py")}");
            BadVersion = new SshServer($"{Python()} {Scratch.File("hostile.py")} badversion");
        }

        public TempDirectory Scratch { get; }

        public SshServer Ssh { get; }

        /// <summary>A server whose SFTP subsystem answers INIT with a one-byte version.</summary>
        public SshServer BadVersion { get; }

        /// <summary>The interpreter's own path: sshd runs the subsystem with a bare PATH.</summary>
        private static string Python()
        {
            var r = ProcessRunner.Run("python3", ["-c", "import sys; print(sys.executable)"], s_hang);
            if (r.ExitCode != 0)
                throw new InvalidOperationException("python3 is missing: apt-get install python3 (test.sh installs it)");
            return r.Stdout.Trim();
        }

        public void Dispose()
        {
            BadVersion.Dispose();
            Ssh.Dispose();
            Scratch.Dispose();
        }
    }

    private async Task<(TestGraph Graph, BlockBackend Backend)> OpenAsync(string mode, SshServer? ssh = null)
    {
        ssh ??= _server.Ssh;
        var graph = new TestGraph(new BlockGraph(new BlockGraphOptions
        {
            Drivers = DriverRegistry.CreateDefault().AddSsh(new SshDriverOptions { AgentSocket = ssh.AgentSocket }),
        }));
        var backend = await graph.Graph.OpenImageAsync(new JsonObject
        {
            ["driver"] = "raw",
            ["file"] = new JsonObject
            {
                ["driver"] = "ssh",
                ["server"] = new JsonObject { ["host"] = "127.0.0.1", ["port"] = ssh.Port.ToString(CultureInfo.InvariantCulture) },
                ["path"] = "/srv/" + mode,
                ["host-key-check"] = new JsonObject { ["mode"] = "none" },
            },
        });
        return (graph, backend);
    }

    [Theory]
    [InlineData("oversize", "malformed reply (32769 bytes for a read of 32768)")]
    [InlineData("huge", "malformed reply (a packet of 2147483647 bytes)")]
    [InlineData("wrongid", "which is not in flight")]
    [InlineData("hangup", "the connection to 127.0.0.1 is lost")]
    public async Task A_misbehaving_server_fails_the_read_with_eio_and_every_later_request_too(string mode, string message)
    {
        var (graph, backend) = await OpenAsync(mode);
        using (graph)
        {
            var buffer = new byte[256 * 1024];
            var read = backend.ReadAsync(0, buffer).AsTask();
            Assert.True(await Task.WhenAny(read, Task.Delay(s_hang)) == read, "the read hung");
            var e = await Assert.ThrowsAnyAsync<BlockException>(() => read);
            Assert.Equal(Errno.EIO, e.Errno);
            Assert.Contains(message, e.Message, StringComparison.Ordinal);

            var again = backend.ReadAsync(0, new byte[512]).AsTask();
            Assert.True(await Task.WhenAny(again, Task.Delay(s_hang)) == again, "a read after the failure hung");
            Assert.Equal(Errno.EIO, (await Assert.ThrowsAnyAsync<BlockException>(() => again)).Errno);
        }
    }

    [Fact]
    public async Task A_truncated_version_reply_fails_the_open_with_eio_and_frees_the_session_once()
    {
        // Twice: a session freed twice would abort the process (glibc) the first or the second time.
        for (int i = 0; i < 2; i++)
        {
            var e = await Assert.ThrowsAnyAsync<BlockException>(() => OpenAsync("plain", _server.BadVersion).WaitAsync(s_hang));
            Assert.Equal(Errno.EIO, e.Errno);
            Assert.Contains("truncated reply", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Reads_answered_a_thousand_bytes_at_a_time_are_asked_again_for_the_rest()
    {
        var (graph, backend) = await OpenAsync("short");
        using (graph)
        {
            Assert.Equal(1L << 20, backend.Length);
            var buffer = new byte[300_000];
            await backend.ReadAsync(123_000, buffer).AsTask().WaitAsync(s_hang);
            for (int i = 0; i < buffer.Length; i++)
            {
                if (buffer[i] != (byte)((123_000 + i) % 251))
                    Assert.Fail($"byte {123_000 + i} is {buffer[i]}");
            }
        }
    }
}
