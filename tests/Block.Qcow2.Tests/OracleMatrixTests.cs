using Block.Graph;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// Both directions against qemu 7.2 over every value of every creation option: cluster size, compat, refcount width,
/// extended L2 and compression type. qemu-io fills a two-image chain with data, zeroes, compressed and discarded
/// ranges and (sub)cluster-sized writes; the library must read exactly what <c>qemu-img convert</c> reads, and what
/// the library then writes into the chain must check clean and read back in qemu as a byte model says.
/// </summary>
/// <remarks>Not the full cross product (448 combinations): every value of each axis, and the pairs that interact
/// (extended L2 with every refcount width and both compressions, 1-bit refcounts with compression, 2 MiB clusters
/// with everything), to stay within the suite's time budget.</remarks>
public class OracleMatrixTests
{
    private const long BaseSize = 8 << 20;
    private const long TopSize = 14 << 20;
    private const int K = 1024;
    private const int M = 1024 * 1024;

    public static TheoryData<ImageSpec> Specs() =>
    [
        // Version 2: 16-bit refcounts, no extended L2, zlib only.
        new ImageSpec(512, "0.10", 16, false, "zlib"),
        new ImageSpec(4096, "0.10", 16, false, "zlib"),
        new ImageSpec(65536, "0.10", 16, false, "zlib"),
        new ImageSpec(2 * M, "0.10", 16, false, "zlib"),
        // Version 3, standard L2 entries.
        new ImageSpec(512, "1.1", 1, false, "zlib"),
        new ImageSpec(512, "1.1", 32, false, "zstd"),
        new ImageSpec(4096, "1.1", 2, false, "zstd"),
        new ImageSpec(4096, "1.1", 64, false, "zlib"),
        new ImageSpec(65536, "1.1", 8, false, "zstd"),
        new ImageSpec(65536, "1.1", 16, false, "zlib"),
        new ImageSpec(2 * M, "1.1", 4, false, "zlib"),
        new ImageSpec(2 * M, "1.1", 64, false, "zstd"),
        // Version 3, extended L2 entries (clusters of at least 16 KiB).
        new ImageSpec(65536, "1.1", 1, true, "zstd"),
        new ImageSpec(65536, "1.1", 4, true, "zlib"),
        new ImageSpec(65536, "1.1", 16, true, "zstd"),
        new ImageSpec(65536, "1.1", 64, true, "zlib"),
        new ImageSpec(2 * M, "1.1", 2, true, "zlib"),
        new ImageSpec(2 * M, "1.1", 8, true, "zstd"),
        new ImageSpec(2 * M, "1.1", 32, true, "zlib"),
    ];

    /// <summary>A unit for small writes: a subcluster with extended L2, else at most 4 KiB.</summary>
    private static int Unit(ImageSpec spec) => spec.ExtendedL2 ? spec.SubclusterSize : Math.Min(spec.ClusterSize, 4096);

    /// <summary>qemu-io fills the base and the top image (the same options for both) and returns their paths.</summary>
    private static (string Base, string Top) MakeChain(TempDirectory dir, ImageSpec spec)
    {
        int u = Unit(spec);
        string basePath = dir.File("base.qcow2");
        string topPath = dir.File("top.qcow2");
        QemuImg.Create("qcow2", basePath, BaseSize.ToString(), spec.CreateOptions());
        QemuIo.RunChecked(basePath, "qcow2",
            "write -P 0xa1 0 3M",
            "write -c -P 0xb2 4M 2M",
            "write -z 1M 512k",
            "discard 2M 1M",
            $"write -P 0xa7 {3 * M + 100} 1000",
            $"write -P 0xa8 {7 * M} {3 * u + 5}");
        QemuImg.Create("qcow2", topPath, TopSize.ToString(), spec.CreateOptions("backing_file=base.qcow2,backing_fmt=qcow2"));
        QemuIo.RunChecked(topPath, "qcow2",
            "write -P 0xc3 100k 5000",
            "write -z 4608k 300k",
            "write -z -u 5M 512k",
            "write -c -P 0xd4 6M 2M",
            "discard 0 512k",
            "write -P 0xe5 9M 100k",
            $"write -P 0xf6 {M + 3 * u} {u}",
            $"write -P 0xf7 {M + 10 * u + 7} {2 * u - 14}",
            $"write -z {2 * M + 5 * u} {3 * u}",
            $"write -z -u {2 * M + 12 * u} {u}");
        return (basePath, topPath);
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public async Task What_qemu_io_writes_into_a_chain_the_library_reads_as_qemu_img_convert_does(ImageSpec spec)
    {
        using var dir = new TempDirectory();
        var (basePath, topPath) = MakeChain(dir, spec);
        Qcow2Images.AssertSameBytes(Qcow2Images.ReadWithQemu(basePath), await Qcow2Images.ReadWithLibraryAsync(basePath), $"base {spec}");
        Qcow2Images.AssertSameBytes(Qcow2Images.ReadWithQemu(topPath), await Qcow2Images.ReadWithLibraryAsync(topPath), $"top {spec}");
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public async Task What_the_library_writes_into_a_chain_checks_clean_and_reads_back_in_qemu_as_the_model(ImageSpec spec)
    {
        using var dir = new TempDirectory();
        var (basePath, topPath) = MakeChain(dir, spec);
        byte[] baseBytes = Qcow2Images.ReadWithQemu(basePath);
        int u = Unit(spec);
        int cs = spec.ClusterSize;
        byte[] topBytes = Qcow2Images.ReadWithQemu(topPath);
        ModelledImage top;

        await using (var graph = Qcow2Images.NewGraph())
        {
            // Version 3 records discarded clusters as zero so that the backing file stays hidden; version 2 cannot,
            // and the backing file shows through again.
            top = new ModelledImage(await Qcow2Images.OpenAsync(graph, topPath), topBytes, cs,
                spec.IsV3 ? null : (offset, length) => Slice(baseBytes, offset, length));

            await top.WriteAsync(50 * K, 70 * K, 1);
            await top.WriteAsync(4100 * K, 10 * K, 2);
            await top.ZeroAsync(6200 * K, 100 * K, mayUnmap: false);
            await top.ZeroAsync(9 * M, 512 * K, mayUnmap: true);
            await top.DiscardAsync(6 * M, 2 * M);
            await top.DiscardAsync(0, 2 * M);
            await top.WriteAsync(50 * K, 10 * K, 3);
            // Compressed, on whole clusters that nothing has allocated yet (beyond the base's end).
            await top.WriteAsync(10 * M, ModelledImage.Compressible(2 * M, 0), RequestFlags.Compressed);
            await top.WriteAsync(9000 * K, K, 4);
            await top.WriteAsync(2 * M + 7 * u, u, 5);
            await top.ZeroAsync(2 * M + 20 * u, 2 * u, mayUnmap: false);
            await top.ZeroAsync(M + 3 * u, u, mayUnmap: true);
            await top.FlushAsync();
            await top.WriteAsync(3 * M + 1, 3, 6);
            await top.WriteAsync(TopSize - 700, 700, 7);
            await top.AssertReadsBackAsync($"library read-back {spec}");
        }

        Qcow2Images.AssertCheckClean(topPath);
        Qcow2Images.AssertCheckClean(basePath);
        // qemu-io's compressed clusters in the top were discarded: what is compressed now, the library compressed.
        Assert.True((long?)Qcow2Images.CheckJson(topPath)["compressed-clusters"] > 0, "the library's compressed write left no compressed cluster");
        Qcow2Images.AssertSameBytes(top.Expected, Qcow2Images.ReadWithQemu(topPath), $"qemu read-back {spec}");
        Qcow2Images.AssertSameBytes(baseBytes, Qcow2Images.ReadWithQemu(basePath), $"base untouched {spec}");
    }

    /// <summary>Bytes of <paramref name="image"/> at a range, zeroes past its end.</summary>
    internal static byte[] Slice(byte[] image, long offset, int length)
    {
        var b = new byte[length];
        if (offset < image.Length)
            image.AsSpan((int)offset, (int)Math.Min(length, image.Length - offset)).CopyTo(b);
        return b;
    }
}
