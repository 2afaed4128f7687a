using Block.Graph;
using Block.Qapi;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Nfs.Tests;

/// <summary>
/// A qcow2 image on the export, opened through the library over <c>nfs://</c>, against a flat byte model: random
/// sequences of writes (many in flight at once), write-zeroes, discards, flushes and reopens read back as the model
/// says, and leave an image <c>qemu-img check</c> finds clean and reads identically.
/// </summary>
[Collection(NfsServerCollection.Name)]
public sealed class NfsQcow2ModelTests(NfsServer server)
{
    private const long Size = 8L << 20;

    public abstract record Op;

    public sealed record WriteOp(long Offset, int Length, int Seed) : Op;

    /// <summary>Writes of 4 KiB to 128 KiB at <see cref="Count"/> places at once, as a guest with a deep queue sends them.</summary>
    public sealed record ParallelWritesOp(int Count, int Seed) : Op;

    public sealed record ZeroOp(long Offset, int Length) : Op;

    public sealed record DiscardOp(long Offset, int Length) : Op;

    public sealed record FlushOp : Op;

    public sealed record ReopenOp : Op;

    private static Gen<Op> OpGen() => Gen.Frequency(
        (6, from o in Gen.Choose(0, (int)Size - 1) from l in Gen.Choose(1, 300_000) from s in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(o, l, s)),
        (3, from n in Gen.Choose(2, 32) from s in Gen.Choose(1, int.MaxValue) select (Op)new ParallelWritesOp(n, s)),
        (2, from o in Gen.Choose(0, (int)Size - 1) from l in Gen.Choose(1, 300_000) select (Op)new ZeroOp(o, l)),
        (2, from o in Gen.Choose(0, (int)Size - 1) from l in Gen.Choose(1, 300_000) select (Op)new DiscardOp(o, l)),
        (1, Gen.Constant((Op)new FlushOp())),
        (1, Gen.Constant((Op)new ReopenOp())));

    [Fact]
    public void Random_operation_sequences_on_a_qcow2_over_nfs_match_the_byte_model_and_check_clean()
    {
        var property = Prop.ForAll(Gen.ListOf(OpGen(), 25).ToArbitrary(), ops => Run([.. ops]));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(6), property);
    }

    private void Run(Op[] ops)
    {
        string name = NfsServer.NewName("qcow2");
        TestSupport.QemuImg.Create("qcow2", server.File(name), Size.ToString(System.Globalization.CultureInfo.InvariantCulture), "cluster_size=65536");
        var model = new ByteModel(Size);
        var graph = server.NewGraph();
        try
        {
            var backend = Open(graph, name);
            foreach (var op in ops)
            {
                switch (op)
                {
                    case WriteOp w:
                    {
                        int length = (int)Math.Min(w.Length, Size - w.Offset);
                        var data = Patterns.Random(length, w.Seed);
                        backend.WriteAsync(w.Offset, data).AsTask().GetAwaiter().GetResult();
                        model.Write(w.Offset, data);
                        break;
                    }
                    case ParallelWritesOp p:
                    {
                        // Disjoint 128 KiB slots, so the order in which the writes land does not matter.
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
                        int length = (int)Math.Min(z.Length, Size - z.Offset);
                        backend.WriteZeroesAsync(z.Offset, length).AsTask().GetAwaiter().GetResult();
                        model.Zero(z.Offset, length);
                        break;
                    }
                    case DiscardOp d:
                    {
                        // qcow2 discards whole clusters (and they read back as zeroes); partial ones are left alone.
                        const int cluster = 65536;
                        int length = (int)Math.Min(d.Length, Size - d.Offset);
                        backend.DiscardAsync(d.Offset, length).AsTask().GetAwaiter().GetResult();
                        long start = (d.Offset + cluster - 1) / cluster * cluster;
                        long end = (d.Offset + length) / cluster * cluster;
                        if (d.Offset + length == Size)
                            end = Size;
                        if (end > start)
                            model.Zero(start, end - start);
                        break;
                    }
                    case FlushOp:
                        backend.FlushAsync().AsTask().GetAwaiter().GetResult();
                        break;
                    case ReopenOp:
                        backend.DisposeAsync().AsTask().GetAwaiter().GetResult();
                        backend = Open(graph, name);
                        break;
                }
            }
            var all = ReadAll(backend);
            Assert.Equal(-1, model.FirstMismatch(0, all));
        }
        finally
        {
            graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        var check = TestSupport.QemuImg.Check(server.File(name), "qcow2");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        using var dir = new TempDirectory();
        string expected = dir.File("model.raw");
        System.IO.File.WriteAllBytes(expected, model.Bytes.ToArray());
        var compare = server.QemuImg("compare", "-f", "qcow2", "-F", "raw", server.Url(name), expected);
        Assert.True(compare.ExitCode == 0, compare.Stdout + compare.Stderr);
    }

    private BlockBackend Open(BlockGraph graph, string name) =>
        graph.OpenImageAsync(server.Url(name), new ImageOpenOptions { Format = "qcow2", Discard = BlockdevDiscardOptions.Unmap })
            .AsTask().GetAwaiter().GetResult();

    private static byte[] ReadAll(BlockBackend backend)
    {
        // Sixteen 512 KiB reads in flight at a time.
        var data = new byte[backend.Length];
        const int piece = 512 << 10;
        var reads = new List<Task>();
        for (long pos = 0; pos < data.Length; pos += piece)
        {
            int n = (int)Math.Min(piece, data.Length - pos);
            reads.Add(backend.ReadAsync(pos, data.AsMemory((int)pos, n)).AsTask());
        }
        Task.WaitAll([.. reads]);
        return data;
    }
}
