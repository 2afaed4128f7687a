using Block.Drivers.File;
using Block.Drivers.Quorum;
using Block.Drivers.Raw;
using Block.Events;
using Block.Graph;
using Block.Options;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Tests;

/// <summary>
/// The quorum vote's own paths, which the oracle tests (three cached children) do not all reach: more children than
/// the vote keeps on the stack, children that answer later (O_DIRECT reads go to a worker thread), and a vote after
/// answers that all came at once but disagree.
/// </summary>
public class QuorumReadTests
{
    private const int Size = 64 * 1024;

    [Theory]
    [InlineData(3, false)]
    [InlineData(3, true)]
    [InlineData(9, false)]
    [InlineData(9, true)]
    public async Task Equal_children_read_as_one_child(int children, bool direct)
    {
        using var dir = new TempDirectory();
        var data = Patterns.Random(Size, seed: 11);
        await using var graph = new BlockGraph();
        var backend = await OpenQuorumAsync(graph, dir, children, direct, data, corrupt: []);

        var actual = new byte[Size];
        await backend.ReadAsync(0, actual);
        Assert.Equal(data, actual);
    }

    [Theory]
    [InlineData(3, false)]
    [InlineData(3, true)]
    [InlineData(9, false)]
    [InlineData(9, true)]
    public async Task A_minority_of_corrupt_children_is_outvoted_and_reported(int children, bool direct)
    {
        using var dir = new TempDirectory();
        var data = Patterns.Random(Size, seed: 12);
        int[] corrupt = children == 3 ? [0] : [0, 4, 8];
        await using var graph = new BlockGraph();
        var reported = new List<QuorumReportBadEvent>();
        graph.EventRaised += e =>
        {
            if (e is QuorumReportBadEvent bad)
                lock (reported)
                    reported.Add(bad);
        };
        var backend = await OpenQuorumAsync(graph, dir, children, direct, data, corrupt);

        var actual = new byte[4096];
        await backend.ReadAsync(8192, actual);
        Assert.Equal(data.AsSpan(8192, 4096).ToArray(), actual);
        Assert.Equal(corrupt.Select(i => $"c{i}"), reported.Select(r => r.NodeName).Order());
        Assert.All(reported, r => Assert.Equal((16L, 8L), (r.SectorNum, r.SectorsCount)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Children_split_below_the_threshold_fail_the_read_with_EIO(bool direct)
    {
        using var dir = new TempDirectory();
        var data = Patterns.Random(Size, seed: 13);
        await using var graph = new BlockGraph();
        var failures = 0;
        graph.EventRaised += e =>
        {
            if (e is QuorumFailureEvent)
                Interlocked.Increment(ref failures);
        };
        var backend = await OpenQuorumAsync(graph, dir, 3, direct, data, corrupt: [0, 1], distinctCorruption: true);

        var e = await Assert.ThrowsAsync<BlockException>(async () => await backend.ReadAsync(0, new byte[4096]));
        Assert.Equal(Errno.EIO, e.Errno);
        Assert.Equal(1, failures);
    }

    /// <summary>
    /// A quorum of <paramref name="children"/> raw children named c0…, vote threshold a majority; the children in
    /// <paramref name="corrupt"/> hold inverted data (each its own pattern with <paramref name="distinctCorruption"/>).
    /// </summary>
    private static async Task<BlockBackend> OpenQuorumAsync(BlockGraph graph, TempDirectory dir, int children, bool direct, byte[] data,
        int[] corrupt, bool distinctCorruption = false)
    {
        var refs = new List<BlockdevRef>();
        for (int i = 0; i < children; i++)
        {
            string path = dir.File($"c{i}.raw");
            var bytes = (byte[])data.Clone();
            if (corrupt.Contains(i))
            {
                for (int b = 0; b < bytes.Length; b++)
                    bytes[b] = (byte)~bytes[b];
                if (distinctCorruption)
                    bytes[0] ^= (byte)(i + 1);
            }
            await File.WriteAllBytesAsync(path, bytes);
            refs.Add(new BlockdevOptionsRaw
            {
                NodeName = $"c{i}",
                File = new BlockdevOptionsFile { Filename = path, Aio = BlockdevAioOptions.Threads, Cache = new BlockdevCacheOptions { Direct = direct } },
            });
        }
        var node = await graph.AddNodeAsync(new BlockdevOptionsQuorum
        {
            NodeName = "q",
            VoteThreshold = children / 2 + 1,
            Children = [.. refs],
        });
        return graph.CreateBackend(node);
    }
}
