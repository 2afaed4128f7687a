using Block.Drivers;
using Block.Graph;
using Block.Qapi;
using Block.Qcow2;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Rbd.Tests;

/// <summary>
/// A qcow2 image on rbd against a flat byte model: random writes, write-zeroes, discards, flushes and reopens read
/// back as the model says, and afterwards <c>qemu-img check</c> finds the image clean and qemu-img reads the model.
/// </summary>
public sealed class Qcow2OnRbdModelTests(CephCluster cluster) : IClassFixture<CephCluster>
{
    private const long Size = 8L << 20;

    public abstract record Op;

    public sealed record WriteOp(long Offset, int Length, int Seed) : Op;

    public sealed record ZeroOp(long Offset, int Length, bool MayUnmap) : Op;

    public sealed record DiscardOp(long Offset, int Length) : Op;

    public sealed record FlushOp : Op;

    public sealed record ReopenOp : Op;

    private static Gen<(long Offset, int Length)> Range() =>
        from offset in Gen.Choose(0, (int)Size - 1)
        from length in Gen.Frequency((4, Gen.Choose(1, 8192)), (2, Gen.Choose(8192, 300_000)))
        select ((long)offset, length);

    private static Gen<Op> OpGen() => Gen.Frequency(
        (6, from r in Range() from seed in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(r.Offset, r.Length, seed)),
        (2, from r in Range() from unmap in Gen.Elements(true, false) select (Op)new ZeroOp(r.Offset, r.Length, unmap)),
        (1, from r in Range() select (Op)new DiscardOp(r.Offset, r.Length)),
        (1, Gen.Constant((Op)new FlushOp())),
        (1, Gen.Constant((Op)new ReopenOp())));

    [Fact]
    public void Random_operation_sequences_match_the_byte_model_and_check_clean()
    {
        var property = Prop.ForAll(Gen.ListOf(OpGen(), 25).ToArbitrary(), ops => RunSequence([.. ops]));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(4), property);
    }

    private static BlockBackend Open(BlockGraph graph, string name) =>
        graph.OpenImageAsync(name, new ImageOpenOptions { Format = "qcow2", Discard = BlockdevDiscardOptions.Unmap }).AsTask().GetAwaiter().GetResult();

    private void RunSequence(Op[] ops)
    {
        string name = cluster.Name(CephCluster.NewImageName("qcow"));
        QemuImg.Run("create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", name, Size.ToString(System.Globalization.CultureInfo.InvariantCulture)).EnsureSuccess("qemu-img create");
        var model = new ByteModel(Size);
        var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2().AddRbd() });
        var backend = Open(graph, name);
        try
        {
            foreach (var op in ops)
            {
                switch (op)
                {
                    case WriteOp w:
                    {
                        int length = (int)Math.Min(w.Length, Size - w.Offset);
                        var data = Patterns.Random(length, w.Seed);
                        backend.WriteAsync(w.Offset, data).AsTask().Wait();
                        model.Write(w.Offset, data);
                        break;
                    }
                    case ZeroOp z:
                    {
                        int length = (int)Math.Min(z.Length, Size - z.Offset);
                        backend.WriteZeroesAsync(z.Offset, length, z.MayUnmap ? RequestFlags.MayUnmap : RequestFlags.None).AsTask().Wait();
                        model.Zero(z.Offset, length);
                        break;
                    }
                    case DiscardOp d:
                    {
                        // qcow2 (v3) discards whole clusters only, which then read as zeroes.
                        const int cs = 65536;
                        int length = (int)Math.Min(d.Length, Size - d.Offset);
                        backend.DiscardAsync(d.Offset, length).AsTask().Wait();
                        long start = (d.Offset + cs - 1) / cs * cs;
                        long end = (d.Offset + length) / cs * cs;
                        if (end > start)
                            model.Zero(start, end - start);
                        break;
                    }
                    case FlushOp:
                        backend.FlushAsync().AsTask().Wait();
                        break;
                    case ReopenOp:
                        backend.DisposeAsync().AsTask().Wait();
                        backend = Open(graph, name);
                        break;
                }
            }
            var all = new byte[Size];
            for (int pos = 0; pos < all.Length; pos += 1 << 20)
                backend.ReadAsync(pos, all.AsMemory(pos, 1 << 20)).AsTask().Wait();
            Assert.Equal(-1, model.FirstMismatch(0, all));
        }
        finally
        {
            backend.DisposeAsync().AsTask().Wait();
            graph.DisposeAsync().AsTask().Wait();
        }
        var check = QemuImg.Check(name, "qcow2");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        using var dir = new TempDirectory();
        string raw = dir.File("oracle.raw");
        QemuImg.Run("convert", "-f", "qcow2", "-O", "raw", name, raw).EnsureSuccess("qemu-img convert");
        Assert.Equal(-1, model.FirstMismatch(0, File.ReadAllBytes(raw)));
    }
}
