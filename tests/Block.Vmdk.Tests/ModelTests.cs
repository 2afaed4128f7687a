using Block.Graph;
using Block.Qapi;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Vmdk.Tests;

/// <summary>
/// Model-based runs, one per writable subformat: random sequences of unaligned writes, write-zeroes, discards,
/// reads, flushes and reopens must read back as a flat byte model says, on both engines; afterwards qemu-img finds
/// the image clean and equal to the model.
/// </summary>
public class ModelTests
{
    /// <summary>The part of the disk the operations touch: the whole of a small disk, or 1 MiB around the 2 GiB extent boundary.</summary>
    private const int Window = 1 << 20;

    public abstract record Op;

    public sealed record WriteOp(int Offset, int Length, int Seed) : Op;

    public sealed record ZeroOp(int Offset, int Length, bool MayUnmap) : Op;

    public sealed record DiscardOp(int Offset, int Length) : Op;

    public sealed record ReadOp(int Offset, int Length) : Op;

    public sealed record FlushOp : Op;

    public sealed record ReopenOp : Op;

    /// <summary>A disk to run on: subformat, options, size, where the window starts, and whether it has a parent.</summary>
    public sealed record Setup(string Name, string Options, long Size, long WindowStart, bool WithParent)
    {
        public override string ToString() => Name;
    }

    public static TheoryData<Setup, BlockdevAioOptions> Setups()
    {
        var data = new TheoryData<Setup, BlockdevAioOptions>();
        var setups = new[]
        {
            new Setup("monolithicSparse", "subformat=monolithicSparse", Window + 1536, 0, false),
            new Setup("monolithicSparse zeroed_grain", "subformat=monolithicSparse,zeroed_grain=on", Window, 0, false),
            new Setup("monolithicSparse child", "subformat=monolithicSparse", Window, 0, true),
            new Setup("monolithicFlat", "subformat=monolithicFlat", Window + 512, 0, false),
            new Setup("twoGbMaxExtentSparse", "subformat=twoGbMaxExtentSparse", (2L << 30) + Window, (2L << 30) - Window / 2, false),
            new Setup("twoGbMaxExtentSparse zeroed_grain", "subformat=twoGbMaxExtentSparse,zeroed_grain=on", (2L << 30) + Window, (2L << 30) - Window / 2, false),
            new Setup("twoGbMaxExtentFlat", "subformat=twoGbMaxExtentFlat", (2L << 30) + Window, (2L << 30) - Window / 2, false),
        };
        foreach (var s in setups)
        {
            data.Add(s, BlockdevAioOptions.Inline);
            data.Add(s, BlockdevAioOptions.Threads);
        }
        return data;
    }

    private static Gen<(int Offset, int Length)> Range() =>
        from offset in Gen.Frequency((3, Gen.Choose(0, Window - 1)), (1, Gen.Choose(0, 15).Select(g => g * 65536)), (1, Gen.Choose(Window / 2 - 70000, Window / 2 + 70000)))
        from length in Gen.Frequency((3, Gen.Choose(1, 4096)), (2, Gen.Choose(4096, 140_000)), (1, Gen.Constant(65536)), (1, Gen.Choose(0, 3)))
        select (offset, Math.Min(length, Window - offset));

    private static Gen<Op> OpGen() => Gen.Frequency(
        (6, from r in Range() from seed in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(r.Offset, r.Length, seed)),
        (2, from r in Range() from unmap in Gen.Elements(true, false) select (Op)new ZeroOp(r.Offset, r.Length, unmap)),
        (1, from r in Range() select (Op)new DiscardOp(r.Offset, r.Length)),
        (3, from r in Range() select (Op)new ReadOp(r.Offset, r.Length)),
        (1, Gen.Constant((Op)new FlushOp())),
        (1, Gen.Constant((Op)new ReopenOp())));

    [Theory]
    [MemberData(nameof(Setups))]
    public void Random_request_sequences_read_back_as_the_byte_model(Setup setup, BlockdevAioOptions aio)
    {
        var property = Prop.ForAll(Gen.ListOf(OpGen(), 30).ToArbitrary(), ops => Run(setup, aio, ops));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(8), property);
    }

    private static void Run(Setup setup, BlockdevAioOptions aio, IEnumerable<Op> ops)
    {
        using var dir = new TempDirectory();
        string image = dir.File("m.vmdk");
        var model = new ByteModel(Window);
        if (setup.WithParent)
        {
            Vmdk.QemuCreate(dir.File("base.vmdk"), setup.Size.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Vmdk.QemuIo(dir.File("base.vmdk"), "write -P 0x3c 0 300000", "write -P 0xc3 700000 200000");
            model.Write(0, Patterns.Fill(300000, 0x3c));
            model.Write(700000, Patterns.Fill(200000, 0xc3));
            BlkRunner.Run("create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", image).EnsureSuccess("create child");
        }
        else
        {
            BlkRunner.Run("create", "-q", "-f", "vmdk", "-o", setup.Options, image, setup.Size.ToString(System.Globalization.CultureInfo.InvariantCulture)).EnsureSuccess("create");
        }
        long w = setup.WindowStart;
        var graph = OpenGraph(image, aio, out var backend);
        try
        {
            foreach (var op in ops)
            {
                switch (op)
                {
                    case WriteOp write:
                        var data = Patterns.Random(write.Length, write.Seed);
                        backend.WriteAsync(w + write.Offset, data).AsTask().GetAwaiter().GetResult();
                        model.Write(write.Offset, data);
                        break;
                    case ZeroOp zero:
                        backend.WriteZeroesAsync(w + zero.Offset, zero.Length, zero.MayUnmap ? RequestFlags.MayUnmap : RequestFlags.None).AsTask().GetAwaiter().GetResult();
                        model.Zero(zero.Offset, zero.Length);
                        break;
                    case DiscardOp discard:
                        // VMDK does not discard (as in QEMU): the request succeeds and changes nothing.
                        backend.DiscardAsync(w + discard.Offset, discard.Length).AsTask().GetAwaiter().GetResult();
                        break;
                    case ReadOp read:
                        var buffer = new byte[read.Length];
                        backend.ReadAsync(w + read.Offset, buffer).AsTask().GetAwaiter().GetResult();
                        Assert.Equal(-1, model.FirstMismatch(read.Offset, buffer));
                        break;
                    case FlushOp:
                        backend.FlushAsync().AsTask().GetAwaiter().GetResult();
                        break;
                    case ReopenOp:
                        graph.Dispose();
                        graph = OpenGraph(image, aio, out backend);
                        break;
                }
            }
            var all = new byte[Window];
            backend.ReadAsync(w, all).AsTask().GetAwaiter().GetResult();
            Assert.Equal(-1, model.FirstMismatch(0, all));
        }
        finally
        {
            graph.Dispose();
        }

        Vmdk.AssertCheckClean(image);
        string raw = dir.File("model.raw");
        using (var f = File.Create(raw))
        {
            f.SetLength(setup.Size);
            f.Position = w;
            f.Write(model.Bytes);
        }
        if (setup.WithParent)
        {
            // Outside the window the child shows its parent.
            Assert.Equal(model.Bytes.ToArray(), InteropTests.QemuRaw(dir, image));
            return;
        }
        var compare = QemuImg.Run("compare", "-f", "raw", "-F", "vmdk", raw, image);
        Assert.True(compare.ExitCode == 0, compare.Stdout + compare.Stderr);
    }

    public sealed record GrainWriteOp(int Grains, int Count, int Seed) : Op;

    private const int StreamGrains = 24;

    private static Gen<Op> StreamOpGen() => Gen.Frequency(
        (5, from grain in Gen.Choose(0, StreamGrains - 1) from count in Gen.Choose(1, 4) from seed in Gen.Choose(1, int.MaxValue)
            select (Op)new GrainWriteOp(grain, Math.Min(count, StreamGrains - grain), seed)),
        (2, from r in Range() from seed in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(r.Offset % (StreamGrains * 65536), Math.Max(1, Math.Min(r.Length, 4096)), seed)),
        (3, from r in Range() select (Op)new ReadOp(r.Offset % (StreamGrains * 65536), Math.Min(r.Length, StreamGrains * 65536 - r.Offset % (StreamGrains * 65536)))),
        (1, Gen.Constant((Op)new ReopenOp())));

    /// <summary>
    /// streamOptimized, written as QEMU allows: whole grains, each once, in any order. Rewrites fail with EIO, partial
    /// grains with EINVAL, and neither changes the content.
    /// </summary>
    [Theory]
    [InlineData(BlockdevAioOptions.Inline)]
    [InlineData(BlockdevAioOptions.Threads)]
    public void StreamOptimized_grain_writes_read_back_as_the_byte_model(BlockdevAioOptions aio)
    {
        var property = Prop.ForAll(Gen.ListOf(StreamOpGen(), 25).ToArbitrary(), ops => RunStream(aio, ops));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(10), property);
    }

    private static void RunStream(BlockdevAioOptions aio, IEnumerable<Op> ops)
    {
        using var dir = new TempDirectory();
        string image = dir.File("s.vmdk");
        const int Size = StreamGrains * 65536;
        BlkRunner.Run("create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", image, Size.ToString(System.Globalization.CultureInfo.InvariantCulture)).EnsureSuccess("create");
        var model = new ByteModel(Size);
        var written = new bool[StreamGrains];
        var graph = OpenGraph(image, aio, out var backend);
        try
        {
            foreach (var op in ops)
            {
                switch (op)
                {
                    case GrainWriteOp g:
                        var data = Patterns.Random(g.Count * 65536, g.Seed);
                        bool fresh = !written.AsSpan(g.Grains, g.Count).Contains(true);
                        if (fresh)
                        {
                            backend.WriteAsync(g.Grains * 65536L, data).AsTask().GetAwaiter().GetResult();
                            model.Write(g.Grains * 65536L, data);
                            written.AsSpan(g.Grains, g.Count).Fill(true);
                        }
                        else
                        {
                            var e = Assert.Throws<BlockException>(() => backend.WriteAsync(g.Grains * 65536L, data).AsTask().GetAwaiter().GetResult());
                            Assert.Equal(Errno.EIO, e.Errno);
                        }
                        break;
                    case WriteOp w when w.Length % 65536 != 0:
                        var partial = Assert.Throws<BlockException>(() => backend.WriteAsync(w.Offset, Patterns.Random(w.Length, w.Seed)).AsTask().GetAwaiter().GetResult());
                        Assert.Equal(Errno.EINVAL, partial.Errno);
                        break;
                    case ReadOp read:
                        var buffer = new byte[read.Length];
                        backend.ReadAsync(read.Offset, buffer).AsTask().GetAwaiter().GetResult();
                        Assert.Equal(-1, model.FirstMismatch(read.Offset, buffer));
                        break;
                    case ReopenOp:
                        graph.Dispose();
                        graph = OpenGraph(image, aio, out backend);
                        break;
                }
            }
        }
        finally
        {
            graph.Dispose();
        }
        Vmdk.AssertCheckClean(image);
        Assert.Equal(model.Bytes.ToArray(), InteropTests.QemuRaw(dir, image));
    }

    private static TestGraph OpenGraph(string image, BlockdevAioOptions aio, out BlockBackend backend)
    {
        var graph = Vmdk.Graph();
        backend = graph.Graph.OpenImageAsync(image, new ImageOpenOptions { Format = "vmdk", Aio = aio, Discard = BlockdevDiscardOptions.Unmap })
            .AsTask().GetAwaiter().GetResult();
        return graph;
    }
}
