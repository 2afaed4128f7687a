using System.Buffers.Binary;
using Block.Nbd.Client;
using Block.Nbd.Protocol;

namespace Block.Nbd.Tests.Client;

/// <summary>
/// A server that breaks the protocol never corrupts the client's memory or hangs it: the requests it affects fail
/// with EIO and a message that says what was wrong, and requests after a broken connection fail at once.
/// </summary>
public sealed class HostileServerTests
{
    private static async Task AssertEioAsync(ValueTask request, string? messagePart = null)
    {
        var e = await Assert.ThrowsAsync<BlockException>(async () => await request);
        Assert.Equal(Errno.EIO, e.Errno);
        if (messagePart != null)
            Assert.Contains(messagePart, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_reply_with_an_unknown_cookie_fails_every_request_in_flight_and_later_ones_fast()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var a = client.ReadAsync(0, new byte[512].AsMemory());
            var b = client.ReadAsync(4096, new byte[512].AsMemory());
            var ra = await server.ReceiveRequestAsync();
            await server.ReceiveRequestAsync();
            await server.SendAsync(ScriptedNbdServer.Data(ra.Cookie ^ 0x10000, 0, 512, 0xaa));
            await AssertEioAsync(a, "unknown cookie");
            await AssertEioAsync(b, "unknown cookie");
            Assert.True(client.IsClosed);
            await AssertEioAsync(client.ReadAsync(0, new byte[512].AsMemory()));
        }
    }

    [Fact]
    public async Task A_data_chunk_past_the_request_leaves_the_callers_memory_alone_and_fails_with_eio()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var memory = new byte[8192];
            var read = client.ReadAsync(4096, memory.AsMemory(0, 4096));
            var r = await server.ReceiveRequestAsync();
            await server.SendAsync(ScriptedNbdServer.Data(r.Cookie, 4096 + 2048, 4096, 0xaa));
            await AssertEioAsync(read, "outside the request");
            Assert.True(memory.All(x => x == 0));
        }
    }

    [Fact]
    public async Task A_chunk_claiming_a_huge_payload_fails_without_allocating_it()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var status = client.BlockStatusAsync(0, 65536);
            var r = await server.ReceiveRequestAsync();
            Assert.Equal(NbdProtocol.CmdBlockStatus, r.Type);
            await server.SendAsync(ScriptedNbdServer.Chunk(r.Cookie, NbdProtocol.ReplyTypeBlockStatus, true, new byte[12], length: 0x7ffffff4));
            var e = await Assert.ThrowsAsync<BlockException>(async () => await status);
            Assert.Equal(Errno.EIO, e.Errno);
        }
    }

    [Fact]
    public async Task A_reply_cut_off_by_a_dropped_connection_fails_with_eio()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var read = client.ReadAsync(0, new byte[4096].AsMemory());
            var flush = client.FlushAsync();
            var r = await server.ReceiveRequestAsync();
            await server.ReceiveRequestAsync();
            var partial = ScriptedNbdServer.Data(r.Cookie, 0, 4096, 0x11);
            await server.SendAsync(partial[..1000]);
            server.Drop();
            await AssertEioAsync(read, "truncated");
            await AssertEioAsync(flush);
            await AssertEioAsync(client.WriteAsync(0, new byte[512].AsMemory(), fua: false));
        }
    }

    [Fact]
    public async Task A_connection_dropped_between_replies_fails_the_requests_in_flight()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var requests = Enumerable.Range(0, 8).Select(i => client.ReadAsync(i * 4096L, new byte[4096].AsMemory()).AsTask()).ToArray();
            for (int i = 0; i < 8; i++)
                await server.ReceiveRequestAsync();
            server.Drop();
            foreach (var request in requests)
                await AssertEioAsync(new ValueTask(request), "closed");
        }
    }

    [Fact]
    public async Task An_error_chunk_fails_only_its_request_with_the_servers_errno()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var failing = client.ReadAsync(0, new byte[512].AsMemory());
            var r = await server.ReceiveRequestAsync();
            await server.SendAsync(ScriptedNbdServer.Error(r.Cookie, NbdProtocol.ENOSPC, "disk full"));
            var e = await Assert.ThrowsAsync<BlockException>(async () => await failing);
            Assert.Equal(Errno.ENOSPC, e.Errno);
            Assert.Contains("disk full", e.Message, StringComparison.Ordinal);

            var buffer = new byte[512];
            var next = client.ReadAsync(512, buffer.AsMemory());
            r = await server.ReceiveRequestAsync();
            await server.SendAsync(ScriptedNbdServer.Data(r.Cookie, 512, 512, 0x5a));
            await next;
            Assert.True(buffer.All(x => x == 0x5a));
            Assert.False(client.IsClosed);
        }
    }

    [Fact]
    public async Task A_large_read_goes_out_in_parts_together_and_a_failed_part_fails_it_only_after_every_part_is_answered()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var buffer = new byte[ScriptedNbdServer.Size];
            var read = client.ReadAsync(0, buffer.AsMemory()).AsTask();
            // Every part is sent before any reply comes: they are in flight together.
            var parts = new NbdRequest[ScriptedNbdServer.Size / NbdClient.PartSize];
            for (int i = 0; i < parts.Length; i++)
                parts[i] = await server.ReceiveRequestAsync();
            Assert.Equal(Enumerable.Range(0, parts.Length).Select(i => ((ulong)i * NbdClient.PartSize, (uint)NbdClient.PartSize)),
                parts.Select(p => (p.Offset, p.Length)));
            await server.SendAsync(ScriptedNbdServer.Error(parts[1].Cookie, NbdProtocol.EIO, "bad sector"));
            foreach (var part in parts.Skip(2).Reverse())
                await server.SendAsync(ScriptedNbdServer.Data(part.Cookie, part.Offset, NbdClient.PartSize, 0x11));
            Assert.False(read.IsCompleted);
            await server.SendAsync(ScriptedNbdServer.Data(parts[0].Cookie, 0, NbdClient.PartSize, 0x33));
            var e = await Assert.ThrowsAsync<BlockException>(() => read);
            Assert.Equal(Errno.EIO, e.Errno);
            Assert.Contains("bad sector", e.Message, StringComparison.Ordinal);
            Assert.False(client.IsClosed);

            // Every slot went back: as many requests as the client allows can be in flight again.
            var small = Enumerable.Range(0, 16).Select(i => client.ReadAsync(i * 512L, new byte[512].AsMemory()).AsTask()).ToArray();
            for (int i = 0; i < 16; i++)
            {
                var r = await server.ReceiveRequestAsync();
                await server.SendAsync(ScriptedNbdServer.Data(r.Cookie, r.Offset, 512, 0x55));
            }
            await Task.WhenAll(small);
        }
    }

    [Fact]
    public async Task A_read_finished_without_all_its_data_fails_and_the_connection_goes_on()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var read = client.ReadAsync(0, new byte[4096].AsMemory());
            var r = await server.ReceiveRequestAsync();
            await server.SendAsync(ScriptedNbdServer.Data(r.Cookie, 0, 1024, 0x11));
            await AssertEioAsync(read, "1024 of 4096");
            Assert.False(client.IsClosed);
        }
    }

    [Fact]
    public async Task A_chunk_after_the_last_one_of_its_request_is_a_protocol_error()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var buffer = new byte[512];
            var read = client.ReadAsync(0, buffer.AsMemory());
            var r = await server.ReceiveRequestAsync();
            await server.SendAsync(ScriptedNbdServer.Data(r.Cookie, 0, 512, 0x11));
            await read;
            var next = client.ReadAsync(0, new byte[512].AsMemory());
            await server.ReceiveRequestAsync();
            await server.SendAsync(ScriptedNbdServer.Data(r.Cookie, 0, 512, 0x22));
            await AssertEioAsync(next, "unknown cookie");
            Assert.True(buffer.All(x => x == 0x11));
        }
    }

    [Fact]
    public async Task A_simple_reply_with_read_data_after_structured_replies_were_agreed_is_refused()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var read = client.ReadAsync(0, new byte[512].AsMemory());
            var r = await server.ReceiveRequestAsync();
            await server.SendAsync([.. ScriptedNbdServer.Simple(r.Cookie), .. new byte[512]]);
            await AssertEioAsync(read, "simple reply");
        }
    }

    [Fact]
    public async Task Unknown_chunk_types_and_bad_magics_end_the_connection()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var read = client.ReadAsync(0, new byte[512].AsMemory());
            var r = await server.ReceiveRequestAsync();
            await server.SendAsync(ScriptedNbdServer.Chunk(r.Cookie, 0x1234, true, []));
            await AssertEioAsync(read, "unknown chunk type");
        }
        (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var read = client.FlushAsync();
            await server.ReceiveRequestAsync();
            await server.SendAsync(new byte[16]);
            await AssertEioAsync(read, "magic");
        }
    }

    [Fact]
    public async Task Block_status_for_a_context_that_was_not_asked_for_is_refused()
    {
        var (server, client) = await ScriptedNbdServer.StartAsync();
        await using (server)
        await using (client)
        {
            var status = client.BlockStatusAsync(0, 4096);
            var r = await server.ReceiveRequestAsync();
            var payload = new byte[12];
            BinaryPrimitives.WriteUInt32BigEndian(payload, ScriptedNbdServer.Context + 1);
            BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(4), 4096);
            await server.SendAsync(ScriptedNbdServer.Chunk(r.Cookie, NbdProtocol.ReplyTypeBlockStatus, true, payload));
            var e = await Assert.ThrowsAsync<BlockException>(async () => await status);
            Assert.Equal(Errno.EIO, e.Errno);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(16)]
    public async Task A_handshake_that_is_garbage_or_cut_short_fails_the_open(int validBytes)
    {
        var greeting = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdProtocol.NbdMagic);
        BinaryPrimitives.WriteUInt64BigEndian(greeting.AsSpan(8), 0xdeadbeef);
        var e = await ScriptedNbdServer.HandshakeFailureAsync(validBytes == 16 ? greeting : greeting[..validBytes]);
        Assert.IsAssignableFrom<BlockException>(e);
    }
}
