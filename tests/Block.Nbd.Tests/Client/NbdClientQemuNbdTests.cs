using Block.Nbd.Client;
using Block.Nbd.Protocol;
using Block.TestSupport;

namespace Block.Nbd.Tests.Client;

/// <summary>The client against qemu-nbd 7.2: what it negotiates, many requests in flight on one connection, block status.</summary>
public sealed class NbdClientQemuNbdTests
{
    private static (TempDirectory Dir, QemuNbd Server) Serve(params string[] extra)
    {
        var dir = new TempDirectory();
        QemuImg.Create("qcow2", dir.File("img.qcow2"), "64M");
        QemuIo.RunChecked(dir.File("img.qcow2"), "qcow2", "write -q -P 0x11 0 1M", "write -q -z 8M 1M");
        return (dir, QemuNbd.Start(dir.File("s.sock"), dir.File("img.qcow2"), ["-f", "qcow2", "-x", "disk", .. extra]));
    }

    [Fact]
    public async Task The_handshake_learns_qemu_nbds_flags_block_sizes_and_context()
    {
        var (dir, server) = Serve();
        using (dir)
        using (server)
        {
            await using var client = await NbdClient.ConnectAsync(NbdServerAddress.Unix(dir.File("s.sock")), new NbdClientOptions { Export = "disk" });
            var e = client.Export;
            Assert.Equal(64L << 20, e.Size);
            Assert.Equal(0x0CED, e.Flags & 0x0FFF);
            Assert.Equal((1u, 4096u, 32u << 20), (e.MinBlock, e.PreferredBlock, e.MaxBlock));
            Assert.True(e.StructuredReplies);
            Assert.NotNull(e.BaseAllocationContext);
        }
    }

    [Fact]
    public async Task Sixty_four_requests_in_flight_on_one_connection_each_get_their_own_reply()
    {
        var (dir, server) = Serve();
        using var directory = dir;
        using (server)
        {
            await using (var client = await NbdClient.ConnectAsync(NbdServerAddress.Unix(dir.File("s.sock")), new NbdClientOptions { Export = "disk" }))
            {
                var writes = Enumerable.Range(0, 64).Select(i =>
                {
                    var data = new byte[(i % 4 + 1) * 16384];
                    data.AsSpan().Fill((byte)(i + 1));
                    return client.WriteAsync(16L << 20 | (long)i << 16, data.AsMemory(), fua: i % 8 == 0).AsTask();
                }).ToArray();
                await Task.WhenAll(writes);
                var buffers = Enumerable.Range(0, 64).Select(i => new byte[(i % 4 + 1) * 16384]).ToArray();
                await Task.WhenAll(Enumerable.Range(0, 64).Select(i => client.ReadAsync(16L << 20 | (long)i << 16, buffers[i].AsMemory()).AsTask()));
                for (int i = 0; i < 64; i++)
                    Assert.True(buffers[i].All(x => x == i + 1), $"request {i} got another request's data");
                await client.FlushAsync();
            }
        }
        for (int i = 0; i < 64; i += 9)
            QemuIo.RunChecked(dir.File("img.qcow2"), "qcow2", $"read -q -P {i + 1} {16L << 20 | (long)i << 16} {(i % 4 + 1) * 16384}");
    }

    [Fact]
    public async Task Block_status_write_zeroes_and_trim_reach_qemu_nbd()
    {
        var (dir, server) = Serve();
        using (dir)
        using (server)
        {
            await using var client = await NbdClient.ConnectAsync(NbdServerAddress.Unix(dir.File("s.sock")), new NbdClientOptions { Export = "disk" });
            Assert.Equal((1u << 20, 0u), await client.BlockStatusAsync(0, 4u << 20));
            var (length, flags) = await client.BlockStatusAsync(8 << 20, 1 << 20);
            Assert.Equal(1u << 20, length);
            Assert.Equal(NbdProtocol.StateZero, flags & NbdProtocol.StateZero);

            await client.WriteZeroesAsync(0, 65536, NbdProtocol.CmdFlagNoHole);
            await client.WriteZeroesAsync(65536, 65536, NbdProtocol.CmdFlagFastZero);
            await client.TrimAsync(131072, 65536, fua: false);
            var buffer = new byte[131072];
            buffer.AsSpan().Fill(0xff);
            await client.ReadAsync(0, buffer.AsMemory());
            Assert.True(buffer.All(x => x == 0));
        }
    }

    [Fact]
    public async Task A_read_only_export_says_so_and_its_writes_fail_with_the_servers_error_and_message()
    {
        var (dir, server) = Serve("-r");
        using (dir)
        using (server)
        {
            await using var client = await NbdClient.ConnectAsync(NbdServerAddress.Unix(dir.File("s.sock")), new NbdClientOptions { Export = "disk" });
            Assert.True(client.Export.Has(NbdProtocol.TxReadOnly));
            var e = await Assert.ThrowsAsync<BlockException>(async () => await client.WriteAsync(0, new byte[512].AsMemory(), fua: false));
            // qemu-nbd 7.2 answers EINVAL (the spec suggests EPERM); the client passes on what the server sent.
            Assert.Equal(Errno.EINVAL, e.Errno);
            Assert.Contains("Export is read-only", e.Message, StringComparison.Ordinal);
            Assert.False(client.IsClosed);
        }
    }
}
