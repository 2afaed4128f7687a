using System.Buffers.Binary;
using Block.Nbd.Protocol;
using Block.Nbd.Server;
using Block.TestSupport;

namespace Block.Nbd.Tests;

/// <summary>Clients that break the protocol lose their own connection, or get an error; the server serves on.</summary>
public sealed class HostileClientTests
{
    private const string Export = "disk";

    private static async Task<(TempDirectory Dir, NbdTestServer Server)> StartAsync(NbdServerOptions? options = null)
    {
        var dir = new TempDirectory();
        string image = dir.File("disk.raw");
        QemuImg.Create("raw", image, "4M");
        QemuIo.RunChecked(image, "raw", "write -q -P 0x5a 0 1M");
        return (dir, await NbdTestServer.StartAsync(dir.File("nbd.sock"), image, "raw", Export, options: options));
    }

    /// <summary>After the hostile client, a well-behaved one still reads the image.</summary>
    private static void AssertStillServes(NbdTestServer server)
    {
        using var client = RawNbdClient.Connect(server.Socket);
        client.Negotiate(Export);
        client.SendRequest(NbdProtocol.CmdRead, 7, 0, 4096);
        var reply = client.ReceiveReply();
        Assert.Equal(7ul, reply.Cookie);
        Assert.Equal(NbdProtocol.ReplyTypeOffsetData, reply.ChunkType);
        Assert.All(reply.Payload.AsSpan(8).ToArray(), b => Assert.Equal(0x5a, b));
    }

    [Fact]
    public async Task A_safe_removal_right_after_a_client_hung_up_does_not_count_it_as_connected()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using (var client = RawNbdClient.Connect(server.Socket))
                client.Negotiate(Export);
            // No wait for the server's thread to notice: QEMU's event loop has seen the hang-up by its next QMP command.
            await server.Server.RemoveExportAsync(Export, hard: false);
        }
    }

    [Fact]
    public async Task A_safe_removal_right_after_a_client_sent_its_disconnect_and_hung_up_does_not_count_it()
    {
        // qemu-io sends NBD_CMD_DISC and closes; when the server thread had not read the request yet, the socket
        // polled readable with bytes left, so the hang-up went unseen and the export was 'still in use' (a flake of
        // NbdExportTests in clean-clone runs). Each round gives that moment another chance.
        for (int round = 0; round < 20; round++)
        {
            var (dir, server) = await StartAsync();
            using (dir)
            await using (server)
            {
                using (var client = RawNbdClient.Connect(server.Socket))
                {
                    client.Negotiate(Export);
                    client.SendRequest(2 /* NBD_CMD_DISC */, 1, 0, 0);
                }
                await server.Server.RemoveExportAsync(Export, hard: false);
            }
        }
    }

    [Fact]
    public async Task A_safe_removal_fails_while_a_client_is_connected()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using var client = RawNbdClient.Connect(server.Socket);
            client.Negotiate(Export);
            var e = await Assert.ThrowsAsync<BlockException>(async () => await server.Server.RemoveExportAsync(Export, hard: false));
            Assert.Equal($"export '{Export}' still in use", e.Message);
        }
    }

    [Fact]
    public async Task Bad_option_magic_closes_the_connection()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using (var client = RawNbdClient.Connect(server.Socket))
            {
                client.ReadGreeting();
                client.Send([0, 0, 0, 3]);
                client.Send(new byte[16]);
                Assert.True(client.IsClosedByServer());
            }
            AssertStillServes(server);
        }
    }

    [Fact]
    public async Task Huge_option_length_closes_the_connection_without_allocating_it()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using (var client = RawNbdClient.Connect(server.Socket))
            {
                client.ReadGreeting();
                client.Send([0, 0, 0, 3]);
                var header = new byte[16];
                BinaryPrimitives.WriteUInt64BigEndian(header, NbdProtocol.OptionMagic);
                BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), NbdProtocol.OptGo);
                BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), uint.MaxValue);
                client.Send(header);
                Assert.True(client.IsClosedByServer());
            }
            AssertStillServes(server);
        }
    }

    [Fact]
    public async Task Go_for_a_missing_export_is_refused_and_negotiation_goes_on()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using var client = RawNbdClient.Connect(server.Socket);
            client.ReadGreeting();
            client.Send([0, 0, 0, 3]);
            var go = new byte[4 + 4 + 2];
            BinaryPrimitives.WriteUInt32BigEndian(go, 4);
            "nope"u8.CopyTo(go.AsSpan(4));
            client.SendOption(NbdProtocol.OptGo, go);
            var (type, message) = client.ReceiveOptionReply();
            Assert.Equal(NbdProtocol.RepErrUnknown, type);
            Assert.Equal("export 'nope' not present", System.Text.Encoding.UTF8.GetString(message));
            client.SendOption(NbdProtocol.OptGo, [0, 0, 0, 200, 0]); // name length past the payload
            Assert.Equal(NbdProtocol.RepErrInvalid, client.ReceiveOptionReply().Type);
            client.SendOption(99, []);
            Assert.Equal(NbdProtocol.RepErrUnsup, client.ReceiveOptionReply().Type);
        }
    }

    [Fact]
    public async Task A_client_that_never_finishes_the_handshake_is_disconnected()
    {
        var (dir, server) = await StartAsync(new NbdServerOptions { HandshakeTimeout = TimeSpan.FromMilliseconds(200) });
        using (dir)
        await using (server)
        {
            using var client = RawNbdClient.Connect(server.Socket);
            client.ReadGreeting();
            Assert.True(client.IsClosedByServer());
        }
    }

    [Fact]
    public async Task Bad_request_magic_closes_the_connection()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using (var client = RawNbdClient.Connect(server.Socket))
            {
                client.Negotiate(Export);
                client.Send(new byte[NbdProtocol.RequestHeaderSize]);
                Assert.True(client.IsClosedByServer());
            }
            AssertStillServes(server);
        }
    }

    [Fact]
    public async Task Oversized_write_gets_EINVAL_then_the_connection_closes()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using (var client = RawNbdClient.Connect(server.Socket))
            {
                client.Negotiate(Export);
                client.SendRequest(NbdProtocol.CmdWrite, 1, 0, uint.MaxValue);
                var reply = client.ReceiveReply();
                Assert.Equal(NbdProtocol.EINVAL, reply.Error);
                Assert.True(client.IsClosedByServer());
            }
            AssertStillServes(server);
        }
    }

    [Fact]
    public async Task Out_of_range_and_malformed_requests_get_errors_and_the_connection_serves_on()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using var client = RawNbdClient.Connect(server.Socket);
            client.Negotiate(Export);
            client.SendRequest(NbdProtocol.CmdRead, 1, 4 << 20, 512);
            Assert.Equal(NbdProtocol.EINVAL, client.ReceiveReply().Error);
            client.SendRequest(NbdProtocol.CmdRead, 2, ulong.MaxValue - 100, 512);
            Assert.Equal(NbdProtocol.EINVAL, client.ReceiveReply().Error);
            client.SendRequest(NbdProtocol.CmdRead, 3, 0, 64 << 20);
            Assert.Equal(NbdProtocol.EINVAL, client.ReceiveReply().Error);
            client.SendRequest(NbdProtocol.CmdWrite, 4, (4 << 20) - 512, 1024, payload: new byte[1024]);
            Assert.Equal(NbdProtocol.EINVAL, client.ReceiveReply().Error);
            client.SendRequest(NbdProtocol.CmdWriteZeroes, 5, 0, 512, flags: 0x80);
            Assert.Equal(NbdProtocol.EINVAL, client.ReceiveReply().Error);
            client.SendRequest(42, 6, 0, 512);
            Assert.Equal(NbdProtocol.EINVAL, client.ReceiveReply().Error);
            client.SendRequest(NbdProtocol.CmdRead, 7, 0, 512);
            var good = client.ReceiveReply();
            Assert.Equal((7ul, 0u), (good.Cookie, good.Error));
        }
    }

    [Fact]
    public async Task A_write_cut_short_by_a_disconnect_writes_nothing()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using (var client = RawNbdClient.Connect(server.Socket))
            {
                client.Negotiate(Export);
                client.SendRequest(NbdProtocol.CmdWrite, 1, 0, 65536, payload: new byte[1000]);
            }
            AssertStillServes(server);
        }
    }

    [Fact]
    public async Task Many_requests_in_flight_are_each_answered_under_their_own_cookie()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using var client = RawNbdClient.Connect(server.Socket);
            client.Negotiate(Export);
            const int Count = 64;
            for (int i = 0; i < Count; i++)
            {
                if (i % 2 == 0)
                    client.SendRequest(NbdProtocol.CmdRead, (ulong)i, (ulong)i * 4096, 4096);
                else
                    client.SendRequest(NbdProtocol.CmdWrite, (ulong)i, (1 << 20) + (ulong)i * 4096, 4096, payload: Patterns.Fill(4096, (byte)i));
            }
            var seen = new HashSet<ulong>();
            for (int i = 0; i < Count; i++)
            {
                var reply = client.ReceiveReply();
                Assert.Equal(0u, reply.Error);
                Assert.True(seen.Add(reply.Cookie));
                if (reply.Cookie % 2 == 0)
                    Assert.Equal(4096 + 8, reply.Payload.Length);
            }
            for (int i = 1; i < Count; i += 2)
            {
                client.SendRequest(NbdProtocol.CmdRead, 1000, (1 << 20) + (ulong)i * 4096, 4096);
                var reply = client.ReceiveReply();
                Assert.All(reply.Payload.AsSpan(8).ToArray(), b => Assert.Equal((byte)i, b));
            }
        }
    }

    [Fact]
    public async Task Block_status_reports_data_and_holes_with_base_allocation()
    {
        var (dir, server) = await StartAsync();
        using (dir)
        await using (server)
        {
            using var client = RawNbdClient.Connect(server.Socket);
            client.Negotiate(Export);
            client.SendRequest(NbdProtocol.CmdBlockStatus, 9, 0, 4 << 20);
            var reply = client.ReceiveReply();
            Assert.Equal(NbdProtocol.ReplyTypeBlockStatus, reply.ChunkType);
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(reply.Payload));
            Assert.Equal(1u << 20, BinaryPrimitives.ReadUInt32BigEndian(reply.Payload.AsSpan(4)));
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(reply.Payload.AsSpan(8)));
            Assert.Equal(NbdProtocol.StateHole | NbdProtocol.StateZero, BinaryPrimitives.ReadUInt32BigEndian(reply.Payload.AsSpan(16)));
        }
    }

    /// <summary>
    /// Every request error a raw client provokes (over 32 MiB, past the end, bad flags, unknown command, writes to a
    /// read-only export), as (cookie, error, chunk type, message), then whether the server hung up.
    /// </summary>
    private static List<string> ProvokeRequestErrors(string socket, string export, bool oversizedWrite)
    {
        var seen = new List<string>();
        using var client = RawNbdClient.Connect(socket);
        client.Negotiate(export);
        void Expect(ushort type, ulong cookie, ulong offset, uint length, ushort flags = 0, byte[]? payload = null)
        {
            client.SendRequest(type, cookie, offset, length, flags, payload);
            var r = client.ReceiveReply();
            string message = r.ChunkType == NbdProtocol.ReplyTypeError
                ? System.Text.Encoding.UTF8.GetString(r.Payload.AsSpan(6, BinaryPrimitives.ReadUInt16BigEndian(r.Payload.AsSpan(4))))
                : string.Empty;
            seen.Add($"{r.Cookie} {r.Error} {r.ChunkType} {message}");
        }
        ulong size = client.Size;
        Expect(NbdProtocol.CmdRead, 1, 0, (32u << 20) + 4096);
        Expect(NbdProtocol.CmdRead, 2, size - 512, 1024);
        Expect(NbdProtocol.CmdWrite, 3, size - 512, 1024, payload: new byte[1024]);
        Expect(NbdProtocol.CmdTrim, 4, size, 1024);
        Expect(NbdProtocol.CmdFlush, 5, size, 1024);
        Expect(NbdProtocol.CmdWriteZeroes, 6, 0, 512, flags: 0x80);
        Expect(NbdProtocol.CmdRead, 7, 0, 512, flags: NbdProtocol.CmdFlagReqOne);
        Expect(42, 8, 0, 512);
        Expect(NbdProtocol.CmdRead, 9, 0, 512);
        if (oversizedWrite)
        {
            Expect(NbdProtocol.CmdWrite, 10, 0, (32u << 20) + 4096);
            seen.Add($"closed {client.IsClosedByServer()}");
        }
        return seen;
    }

    [Fact]
    public async Task Request_errors_are_qemu_nbds_codes_chunks_and_messages_and_an_oversized_write_hangs_up()
    {
        using var dir = new TempDirectory();
        string image = dir.File("disk.raw");
        QemuImg.Create("raw", image, "4M");
        List<string> qemu;
        using (QemuNbd.Start(dir.File("q.sock"), image, "-f", "raw", "-x", Export))
            qemu = ProvokeRequestErrors(dir.File("q.sock"), Export, oversizedWrite: true);
        List<string> ours;
        await using (var server = await NbdTestServer.StartAsync(dir.File("b.sock"), image, "raw", Export))
            ours = ProvokeRequestErrors(dir.File("b.sock"), Export, oversizedWrite: true);
        Assert.Equal(qemu, ours);
        Assert.Contains("1 22 32769 len (33558528 ) is larger than max len (33554432)", ours);
        Assert.Equal("closed True", ours[^1]);
    }

    [Fact]
    public async Task Writes_to_a_read_only_export_get_qemu_nbds_error()
    {
        using var dir = new TempDirectory();
        string image = dir.File("disk.raw");
        QemuImg.Create("raw", image, "4M");
        static List<string> Provoke(string socket)
        {
            var seen = new List<string>();
            using var client = RawNbdClient.Connect(socket);
            client.Negotiate(Export);
            client.SendRequest(NbdProtocol.CmdWrite, 1, 0, 512, payload: new byte[512]);
            client.SendRequest(NbdProtocol.CmdTrim, 2, 0, 512);
            client.SendRequest(NbdProtocol.CmdWriteZeroes, 3, 0, 512);
            client.SendRequest(NbdProtocol.CmdWrite, 4, 4 << 20, 512, payload: new byte[512]);
            for (int i = 0; i < 4; i++)
            {
                var r = client.ReceiveReply();
                seen.Add($"{r.Cookie} {r.Error} {r.ChunkType} {System.Text.Encoding.UTF8.GetString(r.Payload.AsSpan(6))}");
            }
            seen.Sort(StringComparer.Ordinal);
            return seen;
        }
        List<string> qemu;
        using (QemuNbd.Start(dir.File("q.sock"), image, "-f", "raw", "-r", "-x", Export))
            qemu = Provoke(dir.File("q.sock"));
        List<string> ours;
        await using (var server = await NbdTestServer.StartAsync(dir.File("b.sock"), image, "raw", Export, writable: false))
            ours = Provoke(dir.File("b.sock"));
        Assert.Equal(qemu, ours);
        Assert.All(ours, line => Assert.EndsWith("Export is read-only", line));
    }

    [Fact]
    public async Task A_client_pipelining_writes_holds_no_more_than_the_byte_budget_and_every_write_lands()
    {
        var options = new NbdServerOptions { MaxBytesInFlight = 32L << 20 };
        var (dir, server) = await StartAsync(options);
        using (dir)
        await using (server)
        {
            using (var client = RawNbdClient.Connect(server.Socket))
            {
                client.Negotiate(Export);
                // 12 writes of 3 MiB (36 MiB) sent back to back, then 12 reads: the server may hold 32 MiB at once.
                const int Count = 12, Size = 3 << 20;
                for (int i = 0; i < Count; i++)
                    client.SendRequest(NbdProtocol.CmdWrite, (ulong)i, 0, Size, payload: Patterns.Fill(Size, (byte)(i + 1)));
                for (int i = 0; i < Count; i++)
                    Assert.Equal(0u, client.ReceiveReply().Error);
                client.SendRequest(NbdProtocol.CmdRead, 99, 0, 4096);
                Assert.Equal(0u, client.ReceiveReply().Error);
            }
            long peak = server.Server.PeakBytesInFlight;
            Assert.InRange(peak, 3 << 20, 32L << 20);
        }
    }
}
