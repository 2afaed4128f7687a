using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Tests;

public class ConcurrencyTests
{
    [Theory]
    [InlineData(4096, false)]
    [InlineData(4096, true)]
    [InlineData(512, false)]
    public async Task Concurrent_unaligned_writes_sharing_aligned_blocks_lose_no_bytes(int align, bool direct)
    {
        // Many writers patch disjoint byte ranges that share aligned blocks: every one needs read-modify-write of a
        // block another is patching. Without serialisation, later write-backs would restore stale bytes.
        using var dir = new TempDirectory();
        string path = dir.File("img.raw");
        const int size = 64 * 1024;
        TestImages.CreateZeroFile(path, size);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path, BlockdevAioOptions.Threads, direct, align));

        var expected = new byte[size];
        var tasks = new List<Task>();
        var rng = new Random(7);
        int pos = 0;
        int writer = 0;
        while (pos < size)
        {
            int len = Math.Min(size - pos, rng.Next(1, 700));
            var data = Patterns.Fill(len, (byte)(writer % 250 + 1));
            data.CopyTo(expected, pos);
            int offset = pos;
            tasks.Add(Task.Run(async () => await backend.WriteAsync(offset, data)));
            pos += len;
            writer++;
        }
        await Task.WhenAll(tasks);
        var actual = new byte[size];
        await backend.ReadAsync(0, actual);
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData(4096, true)]
    [InlineData(512, true)]
    [InlineData(4096, false)]
    public async Task An_aligned_write_racing_a_read_modify_write_of_its_block_is_never_written_over_with_stale_bytes(int align, bool direct)
    {
        // Each block gets one aligned write of its own pattern and, at the same time, a one-byte write inside it
        // (a read-modify-write of the whole block). Either may land last, but the read-modify-write must never write
        // back the block as it read it before the aligned write: every byte but the patched one ends as the pattern.
        using var dir = new TempDirectory();
        string path = dir.File("img.raw");
        const int blocks = 256;
        int size = blocks * align;
        TestImages.CreateZeroFile(path, size);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path, BlockdevAioOptions.Threads, direct, align));
        using var aligned = Block.Io.AlignedBuffer.Allocate(size);
        var patterns = aligned.Memory[..size];
        new Random(11).NextBytes(patterns.Span);
        var tasks = new List<Task>();
        for (int b = 0; b < blocks; b++)
        {
            int offset = b * align;
            tasks.Add(Task.Run(async () => await backend.WriteAsync(offset + 7, new byte[] { 0xEE })));
            tasks.Add(Task.Run(async () => await backend.WriteAsync(offset, patterns.Slice(offset, align))));
        }
        await Task.WhenAll(tasks);
        var actual = new byte[size];
        await backend.ReadAsync(0, actual);
        for (int b = 0; b < blocks; b++)
        {
            int offset = b * align;
            var expected = patterns.Slice(offset, align).ToArray();
            Assert.True(actual[offset + 7] == 0xEE || actual[offset + 7] == expected[7], $"block {b}: patched byte {actual[offset + 7]:x2}");
            expected[7] = actual[offset + 7];
            Assert.Equal(expected, actual.AsSpan(offset, align).ToArray());
        }
    }

    [Fact]
    public async Task Parallel_readers_and_writers_on_the_threads_engine_complete_and_agree()
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.raw");
        const int size = 1 << 20;
        TestImages.CreateZeroFile(path, size);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path, BlockdevAioOptions.Threads));
        var blocks = Enumerable.Range(0, size / 4096).ToArray();
        await Parallel.ForEachAsync(blocks, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (b, _) =>
        {
            var data = Patterns.Fill(4096, (byte)(b % 255 + 1));
            await backend.WriteAsync((long)b * 4096, data);
            var back = new byte[4096];
            await backend.ReadAsync((long)b * 4096, back);
            Assert.Equal(data, back);
        });
        var stats = backend.GetStats().Stats;
        Assert.Equal(blocks.Length, stats.WrOperations);
        Assert.Equal(blocks.Length, stats.RdOperations);
        Assert.Equal((long)size, stats.WrBytes);
    }
}
