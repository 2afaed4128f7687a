using Block.Graph;
using Block.Qapi;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Tests;

/// <summary>
/// The request path against a flat byte model: random sequences of unaligned reads, writes, write-zeroes, discards
/// and flushes must read back exactly as the model says, for every engine, cache mode and request alignment.
/// </summary>
public class RequestPathModelTests
{
    private const int ImageSize = 192 * 1024;

    public abstract record Op;

    public sealed record WriteOp(int Offset, int Length, int Seed) : Op;

    public sealed record ZeroOp(int Offset, int Length, bool MayUnmap) : Op;

    public sealed record DiscardOp(int Offset, int Length) : Op;

    public sealed record ReadOp(int Offset, int Length) : Op;

    public sealed record FlushOp : Op;

    private static Gen<(int Offset, int Length)> Range() =>
        from offset in Gen.Choose(0, ImageSize - 1)
        from length in Gen.Frequency((3, Gen.Choose(1, 4096)), (2, Gen.Choose(4096, 40_000)), (1, Gen.Choose(0, 3)))
        select (offset, Math.Min(length, ImageSize - offset));

    private static Gen<Op> OpGen() => Gen.Frequency(
        (5, from r in Range() from seed in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(r.Offset, r.Length, seed)),
        (2, from r in Range() from unmap in Gen.Elements(true, false) select (Op)new ZeroOp(r.Offset, r.Length, unmap)),
        (2, from r in Range() select (Op)new DiscardOp(r.Offset, r.Length)),
        (3, from r in Range() select (Op)new ReadOp(r.Offset, r.Length)),
        (1, Gen.Constant((Op)new FlushOp())));

    public static TheoryData<BlockdevAioOptions, bool, int> Configurations()
    {
        var data = new TheoryData<BlockdevAioOptions, bool, int>();
        foreach (var aio in new[] { BlockdevAioOptions.Threads, BlockdevAioOptions.Inline, BlockdevAioOptions.IoUring })
        {
            foreach (bool direct in new[] { false, true })
            {
                foreach (int align in new[] { 1, 512, 4096 })
                    data.Add(aio, direct, align);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Random_request_sequences_read_back_as_the_byte_model(BlockdevAioOptions aio, bool direct, int align)
    {
        var property = Prop.ForAll(Gen.ListOf(OpGen(), 40).ToArbitrary(), ops => RunSequence(ops, aio, direct, align));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(25), property);
    }

    private static void RunSequence(IEnumerable<Op> ops, BlockdevAioOptions aio, bool direct, int align)
    {
        using var dir = new TempDirectory();
        string path = dir.File("img.raw");
        TestImages.CreateZeroFile(path, ImageSize);
        var model = new ByteModel(ImageSize);
        var graph = new BlockGraph();
        try
        {
            var backend = graph.OpenBackendAsync(TestImages.RawOverFile(path, aio, direct, align)).AsTask().GetAwaiter().GetResult();
            // Every node on the way down drops the part of a discard not aligned to its own granularity.
            int discardAlign = 1;
            for (var n = backend.Root; n != null; n = n.PrimaryChild?.Node)
                discardAlign = Math.Max(discardAlign, Math.Max(n.Limits.RequestAlignment, n.Limits.DiscardAlignment));
            foreach (var op in ops)
            {
                switch (op)
                {
                    case WriteOp w:
                        var data = Patterns.Random(w.Length, w.Seed);
                        backend.WriteAsync(w.Offset, data).AsTask().GetAwaiter().GetResult();
                        model.Write(w.Offset, data);
                        break;
                    case ZeroOp z:
                        backend.WriteZeroesAsync(z.Offset, z.Length, z.MayUnmap ? RequestFlags.MayUnmap : RequestFlags.None).AsTask().GetAwaiter().GetResult();
                        model.Zero(z.Offset, z.Length);
                        break;
                    case DiscardOp d:
                        backend.DiscardAsync(d.Offset, d.Length).AsTask().GetAwaiter().GetResult();
                        // Discard is advisory: only the part aligned to the node's granularity is dropped (and reads as zero on a file).
                        long start = (d.Offset + discardAlign - 1) / discardAlign * discardAlign;
                        long end = (long)(d.Offset + d.Length) / discardAlign * discardAlign;
                        if (d.Offset + d.Length == ImageSize)
                            end = ImageSize;
                        if (end > start)
                            model.Zero(start, end - start);
                        break;
                    case ReadOp r:
                        var buffer = new byte[r.Length];
                        backend.ReadAsync(r.Offset, buffer).AsTask().GetAwaiter().GetResult();
                        Assert.Equal(-1, model.FirstMismatch(r.Offset, buffer));
                        break;
                    case FlushOp:
                        backend.FlushAsync().AsTask().GetAwaiter().GetResult();
                        break;
                }
            }
            var all = new byte[ImageSize];
            backend.ReadAsync(0, all).AsTask().GetAwaiter().GetResult();
            Assert.Equal(-1, model.FirstMismatch(0, all));
        }
        finally
        {
            graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        Assert.Equal(-1, model.FirstMismatch(0, File.ReadAllBytes(path)));
    }
}
