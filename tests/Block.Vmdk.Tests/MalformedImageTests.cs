using System.Buffers.Binary;
using System.Text;
using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Vmdk.Tests;

/// <summary>
/// Hostile and broken images (iotest 059's kind): bad grain sizes and table counts, truncated files, tables past
/// the end, broken descriptors, extents outside the allowed directory. Each is refused with an error that names the
/// structure, and opening one allocates little memory whatever its header claims.
/// </summary>
public class MalformedImageTests
{
    /// <summary>Most bytes of managed memory one open of a hostile image may allocate.</summary>
    private const long MemoryBound = 4 << 20;

    private static void Poke(string path, long offset, ReadOnlySpan<byte> bytes)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
        f.Position = offset;
        f.Write(bytes);
    }

    private static byte[] U32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    private static byte[] U64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }

    /// <summary>Opens with the inline engine on this thread and returns the error and the managed bytes the attempt allocated.</summary>
    private static (BlockException? Error, long Allocated) TryOpen(string path, bool readOnly = true, ImageReferencePolicy? policy = null)
    {
        using var graph = Vmdk.Graph(policy);
        long before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            graph.Graph.OpenImageAsync(path, new ImageOpenOptions { Format = "vmdk", ReadOnly = readOnly, Aio = BlockdevAioOptions.Inline })
                .AsTask().GetAwaiter().GetResult();
            return (null, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        catch (BlockException e)
        {
            return (e, GC.GetAllocatedBytesForCurrentThread() - before);
        }
    }

    public static TheoryData<string, long, byte[], string> BadHeaders() => new()
    {
        { "granularity too big", 20, U64(0x400000), "Invalid granularity" },
        { "granularity all ones", 20, U64(ulong.MaxValue), "Invalid granularity" },
        { "granularity zero", 20, U64(0), "L1 entry size is invalid" },
        { "too many grain table entries", 44, U32(513), "L2 table size too big" },
        { "no grain table entries", 44, U32(0), "L1 entry size is invalid" },
        { "capacity beyond the largest disk", 12, U64(ulong.MaxValue), "too large" },
        { "grain directory too big", 12, U64(1UL << 47), "L1 size too big" },
        { "grains start past the end of the file", 64, U64(0xffffffff), "File truncated" },
        { "unknown version", 4, U32(4), "Unsupported VMDK version 4" },
        { "grain directory past the end of the file", 56, U64(0x100000), "grain directory at sector 1048576" },
        { "redundant directory past the end of the file", 48, U64(0x100000), "redundant grain directory" },
        { "huge capacity whose directory is not in the file", 12, U64(1UL << 40), "ends beyond the end of the file" },
        { "unsupported compression", 77, [7, 0], "" },
    };

    [Theory]
    [MemberData(nameof(BadHeaders))]
    public void Bad_sparse_headers_are_refused_naming_the_field_with_bounded_memory(string what, long offset, byte[] value, string message)
    {
        using var dir = new TempDirectory();
        string image = dir.File("bad.vmdk");
        Vmdk.QemuCreate(image, "1M", what == "unsupported compression" ? "subformat=streamOptimized" : null);
        Poke(image, offset, value);
        var (error, allocated) = TryOpen(image);
        Assert.True(error != null, $"{what}: opened");
        Assert.Contains(message, error!.Message);
        Assert.True(allocated < MemoryBound, $"{what}: {allocated} bytes allocated");
    }

    [Fact]
    public void Errors_qemu_img_also_reports_are_reported_with_its_words()
    {
        using var dir = new TempDirectory();
        string image = dir.File("bad.vmdk");
        foreach (var (offset, value) in new (long, byte[])[] { (20, U64(0x400000)), (44, U32(513)), (20, U64(0)), (4, U32(4)), (64, U64(0xffffffff)) })
        {
            Vmdk.QemuCreate(image, "1M");
            Poke(image, offset, value);
            var q = QemuImg.Run("info", image);
            var b = BlkRunner.Run("info", image);
            Assert.Equal(q.ExitCode, b.ExitCode);
            // qemu-img's message, then ours may add the field and value.
            Assert.StartsWith(BlkRunner.AsBlk(q.Stderr).TrimEnd('\n'), b.Stderr.TrimEnd('\n')[..Math.Min(b.Stderr.TrimEnd('\n').Length, q.Stderr.TrimEnd('\n').Length)]);
        }
    }

    [Fact]
    public void Version_3_without_compression_opens_read_only_only()
    {
        using var dir = new TempDirectory();
        string image = dir.File("v3.vmdk");
        Vmdk.QemuCreate(image, "1M");
        Poke(image, 4, U32(3));
        var (rw, _) = TryOpen(image, readOnly: false);
        Assert.NotNull(rw);
        Assert.Contains("VMDK version 3 must be read only", rw!.Message);
        Assert.Null(TryOpen(image, readOnly: true).Error);
        Assert.NotEqual(0, QemuIo.Run(image, "vmdk", "read 0 512").ExitCode);
    }

    [Fact]
    public void Truncated_and_empty_files_are_refused()
    {
        using var dir = new TempDirectory();
        string image = dir.File("t.vmdk");
        Vmdk.QemuCreate(image, "1M");
        using (var f = new FileStream(image, FileMode.Open))
            f.SetLength(300);
        Assert.Contains("truncated", TryOpen(image).Error!.Message);
        File.WriteAllBytes(image, []);
        Assert.Contains("File is too small", TryOpen(image).Error!.Message);
        File.WriteAllBytes(image, "KDMV"u8.ToArray());
        Assert.NotNull(TryOpen(image).Error);
    }

    [Fact]
    public void Grain_tables_and_grains_past_the_end_fail_the_reads_that_need_them_and_the_check()
    {
        using var dir = new TempDirectory();
        string image = dir.File("g.vmdk");
        Vmdk.QemuCreate(image, "64M");
        Vmdk.QemuIo(image, "write -P 1 0 64k", "write -P 2 40M 64k");
        var header = Format.SparseExtentHeader.Parse(File.ReadAllBytes(image).AsSpan(0, 512));
        // The second grain table is moved far past the end; the first grain's entry too.
        Poke(image, (long)header.GrainDirectorySector * 512 + 4, U32(0x7fffff00));
        using (var graph = Vmdk.Graph())
        {
            var backend = Vmdk.Open(graph, image, readOnly: true);
            Assert.Equal(Patterns.Fill(512, 1), BlockIo.Read(backend, 0, 512));
            var e = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 40 << 20, 512));
            Assert.Contains("grain table 1", e.Message);
        }
        Assert.NotEqual(0, BlkRunner.Run("check", image).ExitCode);
    }

    [Fact]
    public void Check_reports_a_grain_past_the_end_as_qemu_img_does()
    {
        using var dir = new TempDirectory();
        string image = dir.File("c.vmdk");
        Vmdk.QemuCreate(image, "64M");
        Vmdk.QemuIo(image, "write -P 1 0 64k", "write -P 2 40M 128k");
        using (var f = new FileStream(image, FileMode.Open))
            f.SetLength(f.Length - 65536 - 1000);
        var q = QemuImg.Check(image, "vmdk");
        var b = BlkRunner.Run("check", image);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Contains("cluster offset for sector 82048 points after EOF", q.Stdout + q.Stderr);
        Assert.Contains("cluster offset for sector 82048 points after EOF", b.Stderr);
        Assert.Equal(63, BlkRunner.Run("check", "-r", "all", image).ExitCode);
    }

    [Fact]
    public void Compressed_grains_with_broken_markers_or_data_fail_their_reads_cleanly()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("in.raw"), Patterns.Fill(128 * 1024, 0x61));
        QemuImg.Run("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", dir.File("in.raw"), dir.File("s.vmdk")).EnsureSuccess("convert");
        var file = File.ReadAllBytes(dir.File("s.vmdk"));
        var header = Format.SparseExtentHeader.Parse(file);
        long table = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan((int)header.GrainDirectorySector * 512)) * 512L;
        long first = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan((int)table)) * 512L;
        long second = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan((int)table + 4)) * 512L;
        Poke(dir.File("s.vmdk"), first + 8, U32(0x7fffffff));
        Poke(dir.File("s.vmdk"), second + 12, "garbage!"u8);
        using var graph = Vmdk.Graph();
        var backend = Vmdk.Open(graph, dir.File("s.vmdk"), readOnly: true);
        var size = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 0, 512));
        Assert.Contains("compressed size", size.Message);
        var data = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 65536, 512));
        Assert.Contains("zlib", data.Message);
    }

    [Fact]
    public void A_compressed_grain_that_zlib_rejects_as_an_io_error_fails_its_read_cleanly()
    {
        // AFL found it: some corrupt streams make zlib raise ZLibException rather than InvalidDataException.
        using var dir = new TempDirectory();
        string image = dir.File("z.vmdk");
        File.Copy(Path.Combine(RepositoryRoot(), "fuzz", "corpus", "vmdk-image", "regression-zlib-exception"), image);
        using var graph = Vmdk.Graph();
        var backend = Vmdk.Open(graph, image, readOnly: true);
        var e = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 0, (int)Math.Min(backend.Length, 65536)));
        Assert.Contains("zlib", e.Message);
    }

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "Block.sln")))
                return d.FullName;
        }
        throw new InvalidOperationException("Block.sln not found above the test directory");
    }

    public static TheoryData<string, string> BadDescriptors() => new()
    {
        { "# Disk DescriptorFile\nversion=1\nCID=1\nRW 2048 FLAT \"f.img\" 0\n", "invalid VMDK image descriptor" },
        { "# Disk DescriptorFile\nversion=1\ncreateType=\"foo\"\nRW 2048 FLAT \"f.img\" 0\n", "Unsupported image type 'foo'" },
        { "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicSparse\"\nRW 2048 SPARSE \"f.img\"\n", "Unsupported image type 'monolithicSparse'" },
        { "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"f.img\"\n", "Invalid extent line: RW 2048 FLAT \"f.img\"" },
        { "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 ZERO \"f.img\" 0\n", "Invalid extent line" },
        { "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRDONLY 2048 FLAT \"f.img\" 0\n", "declares no extent" },
        { "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 0 FLAT \"f.img\" 0\n", "declares no extent" },
        { "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"missing.img\" 0\n", "missing.img" },
        { "# Disk DescriptorFile\nversion=1\ncreateType=\"seSparse\"\nRW 2048 SESPARSE \"f.img\"\n", "seSparse extents are not supported" },
        { "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 4611686018427387904 FLAT \"f.img\" 0\n", "more than" },
        { "hello", "invalid VMDK image descriptor" },
    };

    [Theory]
    [MemberData(nameof(BadDescriptors))]
    public void Bad_descriptors_are_refused_with_a_clear_error(string text, string message)
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("f.img"), new byte[1 << 20]);
        File.WriteAllText(dir.File("d.vmdk"), text);
        var (error, allocated) = TryOpen(dir.File("d.vmdk"));
        Assert.NotNull(error);
        Assert.Contains(message, error!.Message);
        Assert.True(allocated < MemoryBound, $"{allocated} bytes allocated");
    }

    [Fact]
    public void A_descriptor_of_megabytes_is_read_only_up_to_its_limit()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("f.img"), new byte[1 << 20]);
        var text = new StringBuilder("# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n");
        text.Append('#', 3 << 20).Append("\nRW 2048 FLAT \"f.img\" 0\n");
        File.WriteAllText(dir.File("d.vmdk"), text.ToString());
        var (error, allocated) = TryOpen(dir.File("d.vmdk"));
        Assert.Contains("declares no extent", error!.Message);
        Assert.True(allocated < 16 << 20, $"{allocated} bytes allocated");
    }

    [Theory]
    [InlineData("../outside.img")]
    [InlineData("/etc/hostname")]
    public void Extent_paths_escaping_the_allowed_directory_are_refused_by_the_reference_policy(string extent)
    {
        using var root = new TempDirectory();
        string dir = Path.Combine(root.Path, "images");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(root.Path, "outside.img"), new byte[1 << 20]);
        File.WriteAllText(Path.Combine(dir, "d.vmdk"), $"# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"{extent}\" 0\n");
        var (error, _) = TryOpen(Path.Combine(dir, "d.vmdk"), policy: ImageReferencePolicy.RestrictTo(dir));
        Assert.NotNull(error);
        Assert.Equal(Errno.EACCES, error!.Errno);
        Assert.Contains("outside", error.Message);
        if (extent.StartsWith("..", StringComparison.Ordinal))
            Assert.Null(TryOpen(Path.Combine(dir, "d.vmdk"), policy: ImageReferencePolicy.Allow).Error);
    }

    [Fact]
    public void Bad_cowd_headers_are_refused_and_bare_cowd_files_are_not_disks()
    {
        using var dir = new TempDirectory();
        var header = new byte[2048];
        File.WriteAllText(dir.File("d.vmdk"), "# Disk DescriptorFile\nversion=1\ncreateType=\"vmfsSparse\"\nRW 2048 VMFSSPARSE \"c.vmdk\"\n");
        new Format.CowdHeader(1, 3, 2048, 0, 4, 1, 100, 0).Write(header);
        File.WriteAllBytes(dir.File("c.vmdk"), header);
        Assert.Contains("Invalid granularity", TryOpen(dir.File("d.vmdk")).Error!.Message);
        new Format.CowdHeader(1, 3, uint.MaxValue, 1, 4, 1, 100, 0).Write(header);
        File.WriteAllBytes(dir.File("c.vmdk"), header);
        Assert.Contains("cannot map", TryOpen(dir.File("d.vmdk")).Error!.Message);
        new Format.CowdHeader(1, 3, 2048, 8, 4000, 1, 100, 0).Write(header);
        File.WriteAllBytes(dir.File("c.vmdk"), header);
        Assert.Contains("beyond the end of the file", TryOpen(dir.File("d.vmdk")).Error!.Message);
        // QEMU opens a COWD extent only through a descriptor.
        Assert.Contains("COWD extent", TryOpen(dir.File("c.vmdk")).Error!.Message);
        Assert.NotEqual(0, QemuImg.Run("info", "-f", "vmdk", dir.File("c.vmdk")).ExitCode);
    }
}
