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

    [Theory]
    [InlineData(16)]
    [InlineData(3)]
    public async Task Large_reads_and_writes_many_at_once_split_into_parts_that_share_the_slots_without_deadlock(int maxInFlight)
    {
        var (dir, server) = Serve();
        using var directory = dir;
        using (server)
        {
            var options = new NbdClientOptions { Export = "disk", MaxInFlight = maxInFlight };
            await using (var client = await NbdClient.ConnectAsync(NbdServerAddress.Unix(dir.File("s.sock")), options))
            {
                // Eight 2 MiB requests at once: 256 parts of 64 KiB for at most 16 (or 3) slots.
                const int Size = 2 << 20;
                var writes = Enumerable.Range(0, 8).Select(i =>
                {
                    var data = new byte[Size];
                    for (int k = 0; k < data.Length; k += 4096)
                        data.AsSpan(k, 4096).Fill(Pattern(i, k / NbdClient.PartSize));
                    return client.WriteAsync(32L << 20 | (long)i * Size, data.AsMemory(), fua: false).AsTask();
                }).ToArray();
                await Task.WhenAll(writes);
                var buffers = Enumerable.Range(0, 8).Select(_ => new byte[Size]).ToArray();
                await Task.WhenAll(Enumerable.Range(0, 8).Select(i => client.ReadAsync(32L << 20 | (long)i * Size, buffers[i].AsMemory()).AsTask()));
                for (int i = 0; i < 8; i++)
                {
                    for (int part = 0; part < Size / NbdClient.PartSize; part++)
                        Assert.True(buffers[i].AsSpan(part * NbdClient.PartSize, NbdClient.PartSize).IndexOfAnyExcept(Pattern(i, part)) < 0, $"request {i} part {part}");
                }
                await client.FlushAsync();
            }
        }
        QemuIo.RunChecked(dir.File("img.qcow2"), "qcow2", $"read -q -P {Pattern(5, 3)} {(32L << 20) + 5 * (2L << 20) + 3 * NbdClient.PartSize} {NbdClient.PartSize}");
    }

    private static byte Pattern(int request, int part) => (byte)((request * 32 + part) % 251 + 1);

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
