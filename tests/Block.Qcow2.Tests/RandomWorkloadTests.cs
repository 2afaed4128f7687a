using Block.Graph;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Qcow2.Tests;

/// <summary>
/// Random sequences of writes, write-zeroes, discards, compressed writes, flushes and reopens on the top of a
/// qemu-made chain: the library reads back the byte model throughout, and afterwards qemu-img check is clean and
/// qemu reads back the same model.
/// </summary>
public class RandomWorkloadTests
{
    private const int BaseSize = 1536 * 1024;
    private const int TopSize = 2 << 20;

    public abstract record Op;

    public sealed record WriteOp(int Offset, int Length, int Seed) : Op;

    public sealed record ZeroOp(int Offset, int Length, bool MayUnmap) : Op;

    public sealed record DiscardOp(int Offset, int Length) : Op;

    /// <summary>A compressed write of one whole cluster (index modulo the cluster count).</summary>
    public sealed record CompressOp(int Cluster, int Seed) : Op;

    public sealed record FlushOp : Op;

    public sealed record ReopenOp : Op;

    public static TheoryData<ImageSpec> Specs() =>
    [
        new ImageSpec(512, "0.10", 16, false, "zlib"),
        new ImageSpec(4096, "1.1", 1, false, "zstd"),
        new ImageSpec(65536, "1.1", 16, true, "zlib"),
    ];

    private static Gen<(int Offset, int Length)> Range() =>
        from offset in Gen.Choose(0, TopSize - 1)
        from length in Gen.Frequency((3, Gen.Choose(1, 4096)), (3, Gen.Choose(4096, 200_000)), (1, Gen.Choose(0, 3)))
        select (offset, Math.Min(length, TopSize - offset));

    private static Gen<Op> OpGen() => Gen.Frequency(
        (6, from r in Range() from seed in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(r.Offset, r.Length, seed)),
        (2, from r in Range() from unmap in Gen.Elements(true, false) select (Op)new ZeroOp(r.Offset, r.Length, unmap)),
        (2, from r in Range() select (Op)new DiscardOp(r.Offset, r.Length)),
        (2, from c in Gen.Choose(0, int.MaxValue) from seed in Gen.Choose(0, 6) select (Op)new CompressOp(c, seed)),
        (1, Gen.Constant((Op)new FlushOp())),
        (1, Gen.Constant((Op)new ReopenOp())));

    [Theory]
    [MemberData(nameof(Specs))]
    public void Random_operation_sequences_match_the_model_in_the_library_and_in_qemu(ImageSpec spec)
    {
        using var dir = new TempDirectory();
        string basePath = dir.File("base.qcow2");
        string pristine = dir.File("pristine.qcow2");
        QemuImg.Create("qcow2", basePath, BaseSize.ToString(), spec.CreateOptions());
        QemuIo.RunChecked(basePath, "qcow2", "write -c -P 0x4d 512k 512k", "write -P 0x3c 0 512k", "write -P 0x3d 1M 512k", "write -z 100k 200k");
        QemuImg.Create("qcow2", pristine, TopSize.ToString(), spec.CreateOptions("backing_file=base.qcow2,backing_fmt=qcow2"));
        QemuIo.RunChecked(pristine, "qcow2", "write -c -P 0x6f 1M 128k", "write -P 0x5e 64k 300k", "write -z 1536k 64k");
        byte[] baseBytes = Qcow2Images.ReadWithQemu(basePath);
        byte[] initial = Qcow2Images.ReadWithQemu(pristine);

        int run = 0;
        var property = Prop.ForAll(Arb.From(Gen.ListOf(OpGen(), 30).Select(l => l.ToArray()), Shrink), ops =>
        {
            string top = dir.File($"top{run++}.qcow2");
            File.Copy(pristine, top);
            RunSequence(spec, top, initial, baseBytes, ops).GetAwaiter().GetResult();
            File.Delete(top);
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(15), property);
    }

    /// <summary>Shorter sequences first: without halves, then without one operation.</summary>
    private static IEnumerable<Op[]> Shrink(Op[] ops)
    {
        if (ops.Length > 1)
        {
            yield return ops[..(ops.Length / 2)];
            yield return ops[(ops.Length / 2)..];
        }
        for (int i = 0; i < ops.Length; i++)
            yield return [.. ops[..i], .. ops[(i + 1)..]];
    }

    private static async Task RunSequence(ImageSpec spec, string top, byte[] initial, byte[] baseBytes, IEnumerable<Op> ops)
    {
        int cs = spec.ClusterSize;
        var graph = Qcow2Images.NewGraph();
        var img = new ModelledImage(await Qcow2Images.OpenAsync(graph, top), initial, cs,
            spec.IsV3 ? null : (offset, length) => OracleMatrixTests.Slice(baseBytes, offset, length));
        try
        {
            foreach (var op in ops)
            {
                switch (op)
                {
                    case WriteOp w:
                        await img.WriteAsync(w.Offset, w.Length, w.Seed);
                        break;
                    case ZeroOp z:
                        await img.ZeroAsync(z.Offset, z.Length, z.MayUnmap);
                        break;
                    case DiscardOp d:
                        await img.DiscardAsync(d.Offset, d.Length);
                        break;
                    case CompressOp c:
                        long offset = (long)(c.Cluster % (TopSize / cs)) * cs;
                        try
                        {
                            await img.WriteAsync(offset, ModelledImage.Compressible(cs, c.Seed), RequestFlags.Compressed);
                        }
                        catch (BlockException e) when (e.Errno == Errno.EIO && e.Message.Contains("already allocated", StringComparison.Ordinal))
                        {
                            // As in QEMU, compression never overwrites an allocated cluster; nothing changed.
                        }
                        break;
                    case FlushOp:
                        await img.FlushAsync();
                        break;
                    case ReopenOp:
                        await graph.DisposeAsync();
                        graph = Qcow2Images.NewGraph();
                        img.Backend = await Qcow2Images.OpenAsync(graph, top);
                        break;
                }
            }
            await img.AssertReadsBackAsync($"library read-back {spec}");
        }
        finally
        {
            await graph.DisposeAsync();
        }
        Qcow2Images.AssertCheckClean(top);
        Qcow2Images.AssertSameBytes(img.Expected, Qcow2Images.ReadWithQemu(top), $"qemu read-back {spec}");
    }
}
