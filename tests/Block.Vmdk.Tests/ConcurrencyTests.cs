using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Vmdk.Tests;

/// <summary>Concurrent requests: allocating writes into the same grains from many threads all survive, and reads run beside them.</summary>
public class ConcurrencyTests
{
    [Theory]
    [InlineData("subformat=monolithicSparse")]
    [InlineData("subformat=twoGbMaxExtentSparse")]
    [InlineData("subformat=monolithicFlat")]
    public async Task Concurrent_writes_into_the_same_unallocated_grains_all_survive(string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("c.vmdk");
        BlkRunner.Run("create", "-q", "-f", "vmdk", "-o", options, image, "8M").EnsureSuccess("create");
        const int Pieces = 256;
        const int PieceSize = 8192;
        using (var graph = Vmdk.Graph())
        {
            var backend = await graph.Graph.OpenImageAsync(image, new ImageOpenOptions { Format = "vmdk", Aio = BlockdevAioOptions.Threads });
            // Pieces interleave so that neighbours in one 64 KiB grain are written by different tasks at once.
            await Parallel.ForEachAsync(Enumerable.Range(0, Pieces), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            {
                int piece = (i * 37) % Pieces;
                await backend.WriteAsync(piece * (long)PieceSize, Patterns.Fill(PieceSize, (byte)(piece + 1)));
                var read = new byte[PieceSize];
                await backend.ReadAsync(piece * (long)PieceSize, read);
                Assert.Equal(Patterns.Fill(PieceSize, (byte)(piece + 1)), read);
            });
        }
        var raw = InteropTests.QemuRaw(dir, image);
        for (int piece = 0; piece < Pieces; piece++)
            Assert.Equal(Patterns.Fill(PieceSize, (byte)(piece + 1)), raw.AsSpan(piece * PieceSize, PieceSize).ToArray());
        Vmdk.AssertCheckClean(image);
    }
}
