using Block.Graph;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Iscsi.Tests;

/// <summary>
/// A qcow2 image on a LUN against a flat byte model (the qcow2 model tests' pattern): random writes, write-zeroes,
/// discards, flushes and reopens read back as the model says, and the image stays clean for <c>qemu-img check</c>.
/// </summary>
public sealed class IscsiQcow2ModelTests : IDisposable
{
    private const long ImageSize = 8L << 20;

    private readonly TgtTarget _target = new(size: 32L << 20);

    public abstract record Op;

    public sealed record WriteOp(long Offset, int Length, int Seed) : Op;

    public sealed record ZeroOp(long Offset, int Length, bool MayUnmap) : Op;

    public sealed record DiscardOp(long Offset, int Length) : Op;

    public sealed record FlushOp : Op;

    public sealed record ReopenOp : Op;

    private static Gen<(long Offset, int Length)> Range() =>
        from offset in Gen.Choose(0, (int)ImageSize - 1)
        from length in Gen.Frequency((4, Gen.Choose(1, 8192)), (2, Gen.Choose(8192, 300_000)))
        select ((long)offset, length);

    private static Gen<Op> OpGen() => Gen.Frequency(
        (6, from r in Range() from seed in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(r.Offset, r.Length, seed)),
        (2, from r in Range() from unmap in Gen.Elements(true, false) select (Op)new ZeroOp(r.Offset, r.Length, unmap)),
        (2, from r in Range() select (Op)new DiscardOp(r.Offset, r.Length)),
        (1, Gen.Constant((Op)new FlushOp())),
        (1, Gen.Constant((Op)new ReopenOp())));

    [Fact]
    public void Random_operation_sequences_on_a_qcow2_image_on_a_lun_match_the_byte_model()
    {
        var property = Prop.ForAll(Gen.ListOf(OpGen(), 25).ToArbitrary(), ops => RunSequence([.. ops]));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(4), property);
    }

    private void RunSequence(Op[] ops)
    {
        QemuImg.Run("create", "-f", "qcow2", "-o", "cluster_size=65536", _target.Url, $"{ImageSize}").EnsureSuccess("qemu-img create");
        var model = new ByteModel(ImageSize);
        var graph = IscsiGraphs.NewGraph();
        var backend = IscsiGraphs.Open(graph, _target, "qcow2");
        try
        {
            foreach (var op in ops)
            {
                switch (op)
                {
                    case WriteOp w:
                    {
                        int length = (int)Math.Min(w.Length, ImageSize - w.Offset);
                        var data = Patterns.Random(length, w.Seed);
                        backend.WriteAsync(w.Offset, data).AsTask().GetAwaiter().GetResult();
                        model.Write(w.Offset, data);
                        break;
                    }
                    case ZeroOp z:
                    {
                        int length = (int)Math.Min(z.Length, ImageSize - z.Offset);
                        backend.WriteZeroesAsync(z.Offset, length, z.MayUnmap ? RequestFlags.MayUnmap : RequestFlags.None).AsTask().GetAwaiter().GetResult();
                        model.Zero(z.Offset, length);
                        break;
                    }
                    case DiscardOp d:
                    {
                        int length = (int)Math.Min(d.Length, ImageSize - d.Offset);
                        backend.DiscardAsync(d.Offset, length).AsTask().GetAwaiter().GetResult();
                        // qcow2 (version 3, no backing file) discards whole clusters only, and they read as zeroes.
                        const long cs = 65536;
                        long start = (d.Offset + cs - 1) / cs * cs, end = (d.Offset + length) / cs * cs;
                        if (end > start)
                            model.Zero(start, end - start);
                        break;
                    }
                    case FlushOp:
                        backend.FlushAsync().AsTask().GetAwaiter().GetResult();
                        break;
                    case ReopenOp:
                        graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
                        graph = IscsiGraphs.NewGraph();
                        backend = IscsiGraphs.Open(graph, _target, "qcow2");
                        break;
                }
            }
            var read = new byte[ImageSize];
            backend.ReadAsync(0, read).AsTask().GetAwaiter().GetResult();
            Assert.Equal(-1, model.FirstMismatch(0, read));
        }
        finally
        {
            graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        var check = QemuImg.Check(_target.Url, "qcow2");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        string flat = _target.Directory.File("model.raw");
        File.WriteAllBytes(flat, model.Bytes.ToArray());
        Assert.Equal(0, QemuImg.Compare(_target.Url, flat, "qcow2", "raw"));
    }

    public void Dispose() => _target.Dispose();
}
