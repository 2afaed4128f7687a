using Block.Graph;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace Block.TestSupport;

/// <summary>
/// The model test of a qcow2 image on a remote store, shared by the protocol drivers' suites (iscsi, nfs, rbd): random
/// writes (some many at once), write-zeroes, discards, flushes and reopens against a flat <see cref="ByteModel"/>, as
/// the qcow2 model tests do on a local file. The suite creates the image (<see cref="Size"/> bytes, 64 KiB clusters),
/// opens it, and afterwards asks qemu-img what it makes of the image; <see cref="Run"/> does the rest.
/// </summary>
public static class RemoteQcow2Model
{
    /// <summary>The image's virtual size.</summary>
    public const long Size = 8L << 20;

    /// <summary>The cluster size the image must be created with (discards are modelled in whole clusters).</summary>
    public const int ClusterSize = 65536;

    /// <summary>One step of a sequence.</summary>
    public abstract record Op;

    /// <summary>A write of random bytes (clipped at the end of the image).</summary>
    public sealed record WriteOp(long Offset, int Length, int Seed) : Op;

    /// <summary>Writes of 4 KiB to 126 KiB in <see cref="Count"/> disjoint 128 KiB slots at once, as a guest with a deep queue sends them.</summary>
    public sealed record ParallelWritesOp(int Count, int Seed) : Op;

    /// <summary>A write-zeroes, allowed to unmap or not.</summary>
    public sealed record ZeroOp(long Offset, int Length, bool MayUnmap) : Op;

    /// <summary>A discard.</summary>
    public sealed record DiscardOp(long Offset, int Length) : Op;

    /// <summary>A flush.</summary>
    public sealed record FlushOp : Op;

    /// <summary>The image closed and opened again.</summary>
    public sealed record ReopenOp : Op;

    private static Gen<(long Offset, int Length)> Range() =>
        from offset in Gen.Choose(0, (int)Size - 1)
        from length in Gen.Frequency((4, Gen.Choose(1, 8192)), (2, Gen.Choose(8192, 300_000)))
        select ((long)offset, length);

    /// <summary>Random steps, writes the most frequent.</summary>
    public static Gen<Op> Operations() => Gen.Frequency(
        (6, from r in Range() from seed in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(r.Offset, r.Length, seed)),
        (2, from n in Gen.Choose(2, 32) from seed in Gen.Choose(1, int.MaxValue) select (Op)new ParallelWritesOp(n, seed)),
        (2, from r in Range() from unmap in Gen.Elements(true, false) select (Op)new ZeroOp(r.Offset, r.Length, unmap)),
        (2, from r in Range() select (Op)new DiscardOp(r.Offset, r.Length)),
        (1, Gen.Constant((Op)new FlushOp())),
        (1, Gen.Constant((Op)new ReopenOp())));

    /// <summary>
    /// Runs <paramref name="ops"/> on the image <paramref name="open"/> opens (called again after each reopen, the
    /// previous backend disposed first), asserts that the whole image then reads back as the model, and returns the
    /// model for the suite's qemu-img checks.
    /// </summary>
    public static ByteModel Run(IReadOnlyList<Op> ops, Func<BlockBackend> open)
    {
        var model = new ByteModel(Size);
        var backend = open();
        try
        {
            foreach (var op in ops)
            {
                switch (op)
                {
                    case WriteOp w:
                    {
                        var data = Patterns.Random(Clip(w.Offset, w.Length), w.Seed);
                        backend.WriteAsync(w.Offset, data).AsTask().GetAwaiter().GetResult();
                        model.Write(w.Offset, data);
                        break;
                    }
                    case ParallelWritesOp p:
                    {
                        // Disjoint slots, so the order in which the writes land does not matter.
                        var random = new Random(p.Seed);
                        var slots = Enumerable.Range(0, (int)(Size / (128 << 10))).OrderBy(_ => random.Next()).Take(p.Count).ToArray();
                        var writes = new List<Task>();
                        foreach (int slot in slots)
                        {
                            long offset = slot * (128L << 10) + random.Next(0, 4) * 512;
                            var data = Patterns.Random(random.Next(4096, (128 << 10) - 2048), random.Next());
                            model.Write(offset, data);
                            writes.Add(backend.WriteAsync(offset, data).AsTask());
                        }
                        Task.WaitAll([.. writes]);
                        break;
                    }
                    case ZeroOp z:
                    {
                        int length = Clip(z.Offset, z.Length);
                        backend.WriteZeroesAsync(z.Offset, length, z.MayUnmap ? RequestFlags.MayUnmap : RequestFlags.None).AsTask().GetAwaiter().GetResult();
                        model.Zero(z.Offset, length);
                        break;
                    }
                    case DiscardOp d:
                    {
                        // qcow2 (v3, no backing file) discards whole clusters only, and they read back as zeroes.
                        int length = Clip(d.Offset, d.Length);
                        backend.DiscardAsync(d.Offset, length).AsTask().GetAwaiter().GetResult();
                        long start = (d.Offset + ClusterSize - 1) / ClusterSize * ClusterSize;
                        long end = (d.Offset + length) / ClusterSize * ClusterSize;
                        if (end > start)
                            model.Zero(start, end - start);
                        break;
                    }
                    case FlushOp:
                        backend.FlushAsync().AsTask().GetAwaiter().GetResult();
                        break;
                    case ReopenOp:
                        backend.DisposeAsync().AsTask().GetAwaiter().GetResult();
                        backend = open();
                        break;
                }
            }
            Assert.Equal(-1, model.FirstMismatch(0, ReadAll(backend)));
        }
        finally
        {
            backend.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        return model;
    }

    private static int Clip(long offset, int length) => (int)Math.Min(length, Size - offset);

    private static byte[] ReadAll(BlockBackend backend)
    {
        // Sixteen 512 KiB reads in flight.
        var data = new byte[Size];
        const int piece = 512 << 10;
        var reads = new List<Task>();
        for (long pos = 0; pos < data.Length; pos += piece)
            reads.Add(backend.ReadAsync(pos, data.AsMemory((int)pos, piece)).AsTask());
        Task.WaitAll([.. reads]);
        return data;
    }
}
