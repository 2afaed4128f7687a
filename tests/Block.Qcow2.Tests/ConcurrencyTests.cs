using Block.Graph;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// Many writers and readers at once on one qcow2 image: writers own interleaved 4 KiB blocks, so they allocate,
/// copy on write from the backing file and link L2 entries in the same clusters and L2 tables at the same time; readers
/// check a region written beforehand all along. The result must equal the model, check clean, and read the same in QEMU.
/// </summary>
public class ConcurrencyTests
{
    private const long Size = 8L << 20;
    private const int Block = 4096;
    private const int Writers = 8;
    private const int Readers = 3;
    private const long StableStart = 6L << 20;

    [Theory]
    [InlineData("cluster_size=65536")]
    [InlineData("cluster_size=4096")]
    [InlineData("cluster_size=512,refcount_bits=8")]
    [InlineData("cluster_size=65536,extended_l2=on")]
    [InlineData("cluster_size=65536,lazy_refcounts=on")]
    public async Task Parallel_writers_on_shared_clusters_and_readers_match_the_model(string options)
    {
        using var dir = new TempDirectory();
        string basePath = dir.File("base.raw");
        string path = dir.File("top.qcow2");
        var backing = Patterns.Random((int)Size, 4242);
        await File.WriteAllBytesAsync(basePath, backing);
        QemuImg.Create("qcow2", path, Size.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{options},backing_file=base.raw,backing_fmt=raw");

        var model = new ByteModel(Size);
        model.Write(0, backing);
        var graph = Qcow2Images.NewGraph();
        var backend = Qcow2Images.Open(graph, path);
        try
        {
            // The readers' region is written (allocated) first and left alone by the writers.
            var stable = Patterns.Random((int)(Size - StableStart), 99);
            await backend.WriteAsync(StableStart, stable);
            model.Write(StableStart, stable);

            long blocks = StableStart / Block;
            var writerModels = new (long Offset, byte[] Data)[Writers][];
            using var stop = new CancellationTokenSource();
            var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
            {
                var random = new Random(w * 31 + 7);
                var log = new List<(long, byte[])>();
                for (int i = 0; i < 150; i++)
                {
                    long block = random.NextInt64(blocks / Writers) * Writers + w;
                    long offset = block * Block;
                    // Whole blocks, or sector-aligned pieces of them, or (rarely) zeroes.
                    int start = random.Next(4) == 0 ? random.Next(8) * 512 : 0;
                    int length = random.Next(4) == 0 ? (random.Next(8 - start / 512) + 1) * 512 : Block - start;
                    if (random.Next(10) == 0)
                    {
                        await backend.WriteZeroesAsync(offset + start, length, RequestFlags.MayUnmap);
                        log.Add((offset + start, new byte[length]));
                    }
                    else
                    {
                        var data = Patterns.Random(length, w * 100_000 + i);
                        await backend.WriteAsync(offset + start, data);
                        log.Add((offset + start, data));
                    }
                    if (random.Next(40) == 0)
                        await backend.FlushAsync();
                }
                writerModels[w] = [.. log];
            })).ToArray();
            var readers = Enumerable.Range(0, Readers).Select(r => Task.Run(async () =>
            {
                var random = new Random(r + 1000);
                var buffer = new byte[64 * 1024];
                int reads = 0;
                while (!stop.IsCancellationRequested || reads < 50)
                {
                    int length = random.Next(1, buffer.Length);
                    long offset = StableStart + random.NextInt64(Size - StableStart - length);
                    await backend.ReadAsync(offset, buffer.AsMemory(0, length));
                    Assert.True(buffer.AsSpan(0, length).SequenceEqual(stable.AsSpan((int)(offset - StableStart), length)),
                        $"reader {r} saw wrong data at {offset}");
                    // Reads of the writers' area must not fail either (their content is in flux).
                    await backend.ReadAsync(random.NextInt64(StableStart - length), buffer.AsMemory(0, length));
                    reads++;
                }
            })).ToArray();

            await Task.WhenAll(writers);
            await stop.CancelAsync();
            await Task.WhenAll(readers);

            foreach (var log in writerModels)
            {
                foreach (var (offset, data) in log)
                    model.Write(offset, data);
            }
            var all = Qcow2Images.ReadAll(backend);
            Assert.Equal(-1, model.FirstMismatch(0, all));
        }
        finally
        {
            await backend.DisposeAsync();
            await graph.DisposeAsync();
        }
        Qcow2Images.AssertClean(path);
        Assert.Equal(-1, model.FirstMismatch(0, Qcow2Images.OracleRead(path, dir)));
    }
}
