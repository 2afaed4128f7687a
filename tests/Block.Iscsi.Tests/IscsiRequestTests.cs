using Block.Graph;
using Block.TestSupport;

namespace Block.Iscsi.Tests;

/// <summary>The request path over a LUN: many commands in flight, the LUN's block size and limits, zeroes and discards.</summary>
public sealed class IscsiRequestTests : IDisposable
{
    private readonly TgtTarget _target = new();

    [Fact]
    public async Task Many_requests_in_flight_complete_with_their_own_data()
    {
        var graph = IscsiGraphs.NewGraph();
        await using var _ = graph;
        var backend = IscsiGraphs.Open(graph, _target);
        const int count = 64, size = 64 * 1024;
        var writes = new List<Task>();
        for (int i = 0; i < count; i++)
            writes.Add(backend.WriteAsync((long)i * size * 3, Patterns.Random(size, i + 1)).AsTask());
        await Task.WhenAll(writes);
        var buffers = Enumerable.Range(0, count).Select(_ => new byte[size]).ToArray();
        await Task.WhenAll(Enumerable.Range(0, count).Select(i => backend.ReadAsync((long)i * size * 3, buffers[i]).AsTask()));
        for (int i = 0; i < count; i++)
            Assert.Equal(Patterns.Random(size, i + 1), buffers[i]);
        await backend.FlushAsync();
        byte[] lun = File.ReadAllBytes(_target.LunPath);
        Assert.Equal(Patterns.Random(size, 5), lun.AsSpan(4 * size * 3, size).ToArray());
    }

    [Fact]
    public async Task Limits_come_from_the_lun_and_unaligned_requests_are_padded_to_its_blocks()
    {
        var graph = IscsiGraphs.NewGraph();
        await using var _ = graph;
        var backend = IscsiGraphs.Open(graph, _target);
        var lun = backend.Root!.PrimaryChild!.Node;
        Assert.Equal("iscsi", lun.DriverName);
        Assert.Equal(512, lun.Limits.RequestAlignment);
        Assert.Equal(64L << 20, lun.Length);

        // One byte at an odd offset: the request path reads the block, changes the byte, writes the block.
        QemuIo.RunChecked(_target.Url, "raw", "write -P 0x66 0 4k");
        await backend.WriteAsync(1001, new byte[] { 0x99 });
        var read = new byte[4096];
        await backend.ReadAsync(0, read);
        var expected = Enumerable.Repeat((byte)0x66, 4096).ToArray();
        expected[1001] = 0x99;
        Assert.Equal(expected, read);
    }

    [Fact]
    public async Task Write_zeroes_and_discard_reach_the_lun_as_write_same_and_unmap()
    {
        var graph = IscsiGraphs.NewGraph();
        await using var _ = graph;
        var backend = IscsiGraphs.Open(graph, _target);
        await backend.WriteAsync(0, Patterns.Random(4 << 20, 3));
        await backend.WriteZeroesAsync(1 << 20, 1 << 20, RequestFlags.MayUnmap);
        await backend.DiscardAsync(3 << 20, 1 << 20);
        await backend.FlushAsync();
        var status = await backend.GetBlockStatusAsync(1 << 20, 1 << 20);
        Assert.True(status.Has(BlockStatusFlags.Zero), status.ToString());
        Assert.False(status.Has(BlockStatusFlags.Data), status.ToString());
        var data = await backend.GetBlockStatusAsync(0, 1 << 20);
        Assert.True(data.Has(BlockStatusFlags.Data), data.ToString());
        var read = new byte[1 << 20];
        await backend.ReadAsync(1 << 20, read);
        Assert.True(read.All(b => b == 0));
        // The backing file has holes there now: tgt punched them for UNMAP and WRITE SAME with UNMAP.
        Assert.Contains("\"data\": false", QemuImg.MapJsonText(_target.LunPath));
    }

    public void Dispose() => _target.Dispose();
}
