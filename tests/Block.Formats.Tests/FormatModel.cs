using System.Globalization;
using Block.Qapi;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Formats.Tests;

/// <summary>
/// The model-based run every writable format of the package gets: random sequences of unaligned writes, write-zeroes,
/// reads, concurrent writes, flushes and reopens read back as a flat byte model says; afterwards qemu-img finds the
/// image clean (where it can check the format) and reads it as the model says.
/// </summary>
/// <param name="Format">The driver's name.</param>
/// <param name="Extension">The image file's extension.</param>
/// <param name="Size">The disk size: a few blocks and a part, so requests cross block boundaries and reach the last.</param>
/// <param name="BlockSize">The format's block (or cluster) size, where allocations race.</param>
/// <param name="QemuChecks">qemu-img has a check for the format (not for vpc).</param>
internal sealed record FormatModel(string Format, string Extension, int Size, int BlockSize, bool QemuChecks = true)
{
    public abstract record Op;

    public sealed record WriteOp(int Offset, int Length, int Seed) : Op;

    public sealed record ZeroOp(int Offset, int Length) : Op;

    public sealed record ReadOp(int Offset, int Length) : Op;

    /// <summary>Writes to distinct places at once, so that allocations race with each other and with in-place writes.</summary>
    public sealed record ConcurrentWritesOp(int[] Offsets, int Seed) : Op;

    public sealed record FlushOp : Op;

    public sealed record ReopenOp : Op;

    /// <summary>
    /// Runs eight random sequences of 25 requests on an image made by <c>blk create -o <paramref name="options"/></c>.
    /// <paramref name="backing"/>, when given, names a raw backing file the options refer to; it is written with
    /// random data shorter than the disk, so the tail past it reads as zeroes.
    /// </summary>
    public void Check(string options, BlockdevAioOptions aio, string? backing = null)
    {
        var property = Prop.ForAll(Gen.ListOf(OpGen(), 25).ToArbitrary(), ops => Run(options, aio, backing, ops));
        FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(8), property);
    }

    private Gen<(int Offset, int Length)> Range() =>
        from offset in Gen.Frequency((3, Gen.Choose(0, Size - 1)), (1, Gen.Choose(0, 4).Select(b => Math.Max(0, b * BlockSize - 2048))))
        from length in Gen.Frequency((3, Gen.Choose(1, 4096)), (2, Gen.Choose(4096, 1_300_000)), (1, Gen.Choose(0, 3)))
        select (offset, Math.Min(length, Size - offset));

    private Gen<Op> OpGen() => Gen.Frequency(
        (6, from r in Range() from seed in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(r.Offset, r.Length, seed)),
        (2, from r in Range() select (Op)new ZeroOp(r.Offset, r.Length)),
        (3, from r in Range() select (Op)new ReadOp(r.Offset, r.Length)),
        (2, from blocks in Gen.Shuffle(Enumerable.Range(0, 4).ToArray()) from seed in Gen.Choose(1, int.MaxValue)
            select (Op)new ConcurrentWritesOp([.. blocks.Select(b => b * BlockSize + 100_000 * b)], seed)),
        (1, Gen.Constant((Op)new FlushOp())),
        (1, Gen.Constant((Op)new ReopenOp())));

    private void Run(string options, BlockdevAioOptions aio, string? backing, IEnumerable<Op> ops)
    {
        using var dir = new TempDirectory();
        string image = dir.File("m." + Extension);
        var model = new ByteModel(Size);
        if (backing is not null)
        {
            var content = Patterns.Random(Size - 100 * 1024, 31);
            File.WriteAllBytes(dir.File(backing), content);
            model.Write(0, content);
        }
        BlkRunner.Run("create", "-q", "-f", Format, "-o", options, image, Size.ToString(CultureInfo.InvariantCulture)).EnsureSuccess("create");
        var graph = Images.Graph();
        var backend = Images.Open(graph, image, Format, aio: aio);
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
                        backend = Images.Open(graph, image, Format, aio: aio);
                        break;
                }
            }
            Assert.Equal(-1, model.FirstMismatch(0, BlockIo.Read(backend, 0, Size)));
        }
        finally
        {
            graph.Dispose();
        }

        if (QemuChecks)
            Images.AssertCheckClean(image, Format);
        Assert.Equal(model.Bytes.ToArray(), Images.QemuRaw(dir, image, Format));
    }
}
