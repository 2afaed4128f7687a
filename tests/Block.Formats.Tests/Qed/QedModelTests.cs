using System.Globalization;
using Block.Qapi;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Formats.Tests.Qed;

/// <summary>
/// Model-based runs in two geometries, with and without a backing file, on both engines: random sequences of unaligned
/// writes, write-zeroes, reads, concurrent writes, flushes and reopens read back as a flat byte model says; afterwards
/// qemu-img finds the image clean and equal to the model.
/// </summary>
public class QedModelTests
{
    /// <summary>Four and a half MiB: requests cross cluster and (with 4 KiB clusters) L2 table boundaries.</summary>
    private const int Size = (4 << 20) + (1 << 19);

    public abstract record Op;

    public sealed record WriteOp(int Offset, int Length, int Seed) : Op;

    public sealed record ZeroOp(int Offset, int Length) : Op;

    public sealed record ReadOp(int Offset, int Length) : Op;

    /// <summary>Writes to distinct places at once, so that allocations race with each other and with in-place writes.</summary>
    public sealed record ConcurrentWritesOp(int[] Offsets, int Seed) : Op;

    public sealed record FlushOp : Op;

    public sealed record ReopenOp : Op;

    public static TheoryData<string, BlockdevAioOptions> Setups() => new()
    {
        { "cluster_size=65536", BlockdevAioOptions.Inline },
        { "cluster_size=4096,table_size=2", BlockdevAioOptions.Threads },
        { "cluster_size=16384,backing_file=base.raw,backing_fmt=raw", BlockdevAioOptions.Threads },
    };

    private static Gen<(int Offset, int Length)> Range() =>
        from offset in Gen.Frequency((3, Gen.Choose(0, Size - 1)), (1, Gen.Choose(0, 4).Select(b => Math.Max(0, (b << 20) - 2048))))
        from length in Gen.Frequency((3, Gen.Choose(1, 4096)), (2, Gen.Choose(4096, 1_300_000)), (1, Gen.Choose(0, 3)))
        select (offset, Math.Min(length, Size - offset));

    private static Gen<Op> OpGen() => Gen.Frequency(
        (6, from r in Range() from seed in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(r.Offset, r.Length, seed)),
        (2, from r in Range() select (Op)new ZeroOp(r.Offset, r.Length)),
        (3, from r in Range() select (Op)new ReadOp(r.Offset, r.Length)),
        (2, from blocks in Gen.Shuffle(Enumerable.Range(0, 4).ToArray()) from seed in Gen.Choose(1, int.MaxValue)
            select (Op)new ConcurrentWritesOp([.. blocks.Select(b => (b << 20) + 100_000 * b)], seed)),
        (1, Gen.Constant((Op)new FlushOp())),
        (1, Gen.Constant((Op)new ReopenOp())));

    [Theory]
    [MemberData(nameof(Setups))]
    public void Random_request_sequences_read_back_as_the_byte_model(string options, BlockdevAioOptions aio)
    {
        var property = Prop.ForAll(Gen.ListOf(OpGen(), 25).ToArbitrary(), ops => Run(options, aio, ops));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(8), property);
    }

    private static void Run(string options, BlockdevAioOptions aio, IEnumerable<Op> ops)
    {
        using var dir = new TempDirectory();
        string image = dir.File("m.qed");
        var model = new ByteModel(Size);
        if (options.Contains("backing_file", StringComparison.Ordinal))
        {
            // A backing file shorter than the image: the tail past it reads as zeroes.
            var content = Patterns.Random(Size - 100 * 1024, 31);
            File.WriteAllBytes(dir.File("base.raw"), content);
            model.Write(0, content);
        }
        BlkRunner.Run("create", "-q", "-f", "qed", "-o", options, image, Size.ToString(CultureInfo.InvariantCulture)).EnsureSuccess("create");
        var graph = Images.Graph();
        var backend = Images.Open(graph, image, "qed", aio: aio);
        try
        {
            foreach (var op in ops)
            {
                switch (op)
                {
                    case WriteOp write:
                        var data = Patterns.Random(write.Length, write.Seed);
                        BlockIo.Write(backend, write.Offset, data);
                        model.Write(write.Offset, data);
                        break;
                    case ZeroOp zero:
                        backend.WriteZeroesAsync(zero.Offset, zero.Length).AsTask().GetAwaiter().GetResult();
                        model.Zero(zero.Offset, zero.Length);
                        break;
                    case ReadOp read:
                        Assert.Equal(-1, model.FirstMismatch(read.Offset, BlockIo.Read(backend, read.Offset, read.Length)));
                        break;
                    case ConcurrentWritesOp concurrent:
                        var pieces = concurrent.Offsets.Select((o, i) => (Offset: o, Data: Patterns.Random(70_000, concurrent.Seed + i))).ToArray();
                        var target = backend;
                        Task.WaitAll([.. pieces.Select(p => Task.Run(() => target.WriteAsync(p.Offset, p.Data).AsTask()))]);
                        foreach (var p in pieces)
                            model.Write(p.Offset, p.Data);
                        break;
                    case FlushOp:
                        backend.FlushAsync().AsTask().GetAwaiter().GetResult();
                        break;
                    case ReopenOp:
                        graph.Dispose();
                        graph = Images.Graph();
                        backend = Images.Open(graph, image, "qed", aio: aio);
                        break;
                }
            }
            Assert.Equal(-1, model.FirstMismatch(0, BlockIo.Read(backend, 0, Size)));
        }
        finally
        {
            graph.Dispose();
        }

        Images.AssertCheckClean(image, "qed");
        Assert.Equal(model.Bytes.ToArray(), Images.QemuRaw(dir, image, "qed"));
    }
}
