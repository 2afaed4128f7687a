using System.Security.Cryptography;
using Block.Graph;
using Block.Io;
using Block.Qcow2.Driver;
using Block.TestSupport;
using static Block.Qcow2.Tests.EncryptedImages;

namespace Block.Qcow2.Tests;

/// <summary>
/// Encrypted qcow2 (LUKS and legacy AES) against qemu-img and qemu-io 7.2: what either writes the other reads,
/// whatever the cipher suite, cluster size or L2 entry width; partial-cluster writes copy the old data re-encrypted;
/// the images check clean; a wrong or missing secret is refused before anything is written.
/// </summary>
public class Qcow2EncryptionTests
{
    private const int Size = 4 << 20;

    public static TheoryData<string> Formats() =>
    [
        LuksOptions(),
        LuksOptions("encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv"),
        LuksOptions("encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=plain,encrypt.hash-alg=sha1,cluster_size=4k"),
        LuksOptions("extended_l2=on,cluster_size=32k"),
        LuksOptions("compat=0.10,cluster_size=1k"),
        AesOptions(),
        AesOptions("compat=0.10,cluster_size=1k"),
    ];

    /// <summary>Whole and partial clusters, unaligned ends, a run across clusters, zeroes and a compressed cluster.</summary>
    private static readonly string[] QemuWrites =
    [
        "write -P 0x11 0 64k",
        "write -P 0x22 1000 3000",
        "write -P 0x33 70000 200000",
        "write -z 320k 64k",
        "write -P 0x44 1M 512",
        "write -c -P 0x55 2M 64k",
        "write -P 0x66 2080k 1k",
    ];

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task What_qemu_io_writes_the_library_reads(string options)
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuCreate(path, Size.ToString(), options);
        QemuIo(path, QemuWrites);
        byte[] expected = QemuReadAll(path);
        Assert.Contains((byte)0x33, expected);

        await using var graph = NewGraph();
        var backend = await OpenAsync(graph, path, readOnly: true);
        Assert.True(backend.Root!.Impl.IsEncrypted);
        Qcow2Images.AssertSameBytes(expected, await Qcow2Images.ReadAllAsync(backend), "library read");

        // Scatter-gather with segments that split sectors goes through a bounce buffer.
        var a = new byte[700];
        var b = new byte[1300];
        await backend.Root!.ReadAsync(900, new IoVector(new Memory<byte>[] { a, b }));
        Qcow2Images.AssertSameBytes(expected.AsMemory(900, 2000), a.Concat(b).ToArray(), "split read");
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task What_the_library_writes_qemu_reads_and_checks_clean(string options)
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        var model = new ByteModel(Size);
        await using (var graph = NewGraph())
        {
            await CreateAsync(graph, path, Size, options);
            var backend = await OpenAsync(graph, path);
            var node = backend.Root!;
            int cluster = (int)node.Impl.ClusterSize!.Value;
            await WriteAsync(backend, model, 0, 65536, 1);
            await WriteAsync(backend, model, 1000, 3000, 2);
            await WriteAsync(backend, model, 70001, 200_003, 3);
            await WriteAsync(backend, model, 5000, 100, 4);
            await backend.WriteZeroesAsync(320 << 10, 64 << 10);
            model.Zero(320 << 10, 64 << 10);
            await WriteAsync(backend, model, 330_000, 777, 5);
            await backend.DiscardAsync(1 << 20, 128 << 10);
            model.Zero(1 << 20, 128 << 10);
            var compressed = Patterns.Random(2 * cluster, 6);
            await backend.WriteAsync(2 << 20, compressed, RequestFlags.Compressed);
            model.Write(2 << 20, compressed);
            await WriteAsync(backend, model, (2 << 20) + 100, 1000, 7);
            await WriteAsync(backend, model, Size - 1234, 1234, 8);
            await backend.FlushAsync();
            Qcow2Images.AssertSameBytes(model.Bytes.ToArray(), await Qcow2Images.ReadAllAsync(backend), "library read");
        }

        Qcow2Images.AssertSameBytes(model.Bytes.ToArray(), QemuReadAll(path), "qemu read");
        AssertQemuCheckClean(path);
    }

    [Fact]
    public async Task Random_writes_over_a_plain_backing_file_match_the_model_in_the_library_and_in_qemu()
    {
        using var dir = new TempDirectory();
        string basePath = dir.File("base.qcow2");
        string top = dir.File("top.qcow2");
        QemuImg.Create("qcow2", basePath, "3M");
        TestSupport.QemuIo.RunChecked(basePath, "qcow2", "write -P 0x3c 0 1M", "write -P 0x3d 1536k 512k", "write -c -P 0x3e 2M 64k");
        QemuCreate(top, Size.ToString(), LuksOptions($"backing_file={basePath},backing_fmt=qcow2,cluster_size=16k"));
        QemuIo(top, ["write -P 0x5e 100k 50k"]);
        var model = new ByteModel(Size);
        model.Write(0, QemuReadAll(top));

        var random = new Random(1234);
        await using (var graph = NewGraph())
        {
            var backend = await OpenAsync(graph, top);
            for (int i = 0; i < 60; i++)
            {
                int offset = random.Next(Size - 1);
                int length = Math.Min(Size - offset, random.Next(4) == 0 ? random.Next(1, 300_000) : random.Next(1, 20_000));
                switch (random.Next(6))
                {
                    case 0:
                        await backend.WriteZeroesAsync(offset, length);
                        model.Zero(offset, length);
                        break;
                    case 1:
                        await backend.FlushAsync();
                        break;
                    default:
                        await WriteAsync(backend, model, offset, length, i);
                        break;
                }
            }
            Qcow2Images.AssertSameBytes(model.Bytes.ToArray(), await Qcow2Images.ReadAllAsync(backend), "library read");
        }
        Qcow2Images.AssertSameBytes(model.Bytes.ToArray(), QemuReadAll(top), "qemu read");
        AssertQemuCheckClean(top);
    }

    [Fact]
    public async Task A_wrong_secret_is_refused_and_nothing_is_written()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuCreate(path, "1M", LuksOptions());
        byte[] before = SHA256.HashData(File.ReadAllBytes(path));

        await using (var graph = NewGraph("not the passphrase"))
        {
            var e = await Assert.ThrowsAsync<BlockException>(async () => await OpenAsync(graph, path));
            Assert.Equal(Errno.EACCES, e.Errno);
            Assert.Equal("Invalid password, cannot unlock any keyslot", e.Message);
        }
        await using (var graph = NewGraph())
        {
            var e = await Assert.ThrowsAsync<BlockOptionsException>(async () => await Qcow2Images.OpenAsync(graph, path));
            Assert.Equal("Parameter 'encrypt.key-secret' is required for cipher", e.Message);
        }
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(path)));
    }

    [Fact]
    public async Task Metadata_only_opens_need_no_secret_and_refuse_data_io()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuCreate(path, "1M", LuksOptions());
        QemuIo(path, ["write -P 0x42 0 4k"]);
        await using var graph = Qcow2Images.NewGraph();
        var backend = await graph.OpenImageAsync(path, new ImageOpenOptions { Format = "qcow2", ReadOnly = true, NoIo = true });
        var info = backend.Root!.GetImageInfo();
        Assert.True(info.Encrypted);
        var encrypt = ((ImageInfoSpecificQcow2)info.FormatSpecific!).Encrypt!;
        Assert.Equal("luks", encrypt.Format);
        Assert.Equal(2068480, encrypt.Luks!.PayloadOffset);
        var e = await Assert.ThrowsAsync<BlockException>(async () => await backend.Root!.ReadAsync(0, new byte[512]));
        Assert.Equal(Errno.EIO, e.Errno);
    }

    [Fact]
    public async Task The_legacy_aes_key_is_the_secrets_first_16_bytes()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuCreate(path, "1M", AesOptions(), "0123456789abcdef");
        QemuIo(path, ["write -P 0x42 0 64k"], "0123456789abcdef");

        await using (var graph = NewGraph("0123456789abcdef and more"))
        {
            var backend = await OpenAsync(graph, path, readOnly: true);
            var data = new byte[65536];
            await backend.ReadAsync(0, data);
            Assert.All(data, x => Assert.Equal(0x42, x));
        }
        await using (var graph = NewGraph("0123456789abcdeX"))
        {
            // Nothing in the image tells a wrong AES key: it opens and reads noise, as in QEMU.
            var backend = await OpenAsync(graph, path, readOnly: true);
            var data = new byte[512];
            await backend.ReadAsync(0, data);
            Assert.Contains(data, x => x != 0x42);
        }
    }

    [Fact]
    public async Task Compressed_clusters_stay_in_the_clear_as_qemu_stores_them()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        await using (var graph = NewGraph())
        {
            await CreateAsync(graph, path, 1 << 20, LuksOptions());
            var backend = await OpenAsync(graph, path);
            await backend.WriteAsync(0, Patterns.Fill(65536, 0x77), RequestFlags.Compressed);
        }
        var check = QemuImg.Run("check", "--output=json", "--object", SecretObject(), "--image-opts", Opts(path));
        Assert.Contains("\"compressed-clusters\": 1", check.Stdout);
        Qcow2Images.AssertSameBytes(Patterns.Fill(65536, 0x77), QemuReadAll(path).AsMemory(0, 65536), "qemu read");

        // The raw deflate stream after the LUKS area inflates to the plaintext without any key.
        byte[] file = File.ReadAllBytes(path);
        var (offset, length) = LuksArea(path);
        bool found = false;
        for (long at = offset + length; at < file.Length && !found; at += 512)
        {
            using var inflate = new System.IO.Compression.DeflateStream(new MemoryStream(file, (int)at, file.Length - (int)at), System.IO.Compression.CompressionMode.Decompress);
            var plain = new byte[65536];
            try
            {
                inflate.ReadExactly(plain);
                found = plain.All(x => x == 0x77);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
            {
            }
        }
        Assert.True(found, "no compressed cluster in the clear");
    }

    [Fact]
    public async Task Encrypted_images_report_zero_init_only_without_preallocation()
    {
        using var dir = new TempDirectory();
        await using var graph = NewGraph();
        await CreateAsync(graph, dir.File("sparse.qcow2"), 1 << 20, LuksOptions());
        await CreateAsync(graph, dir.File("prealloc.qcow2"), 1 << 20, LuksOptions("preallocation=metadata"));
        await CreateAsync(graph, dir.File("plain-prealloc.qcow2"), 1 << 20, "preallocation=metadata");
        Assert.True((await OpenAsync(graph, dir.File("sparse.qcow2"), readOnly: true)).Root!.Impl.HasZeroInit);
        Assert.False((await OpenAsync(graph, dir.File("prealloc.qcow2"), readOnly: true)).Root!.Impl.HasZeroInit);
        Assert.True((await OpenAsync(graph, dir.File("plain-prealloc.qcow2"), readOnly: true)).Root!.Impl.HasZeroInit);
    }

    [Fact]
    public async Task Vm_state_at_unaligned_positions_reads_back()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        await using var graph = NewGraph();
        await CreateAsync(graph, path, 1 << 20, LuksOptions());
        var backend = await OpenAsync(graph, path);
        var node = backend.Root!;
        var state = Patterns.Random(3000, 9);
        await node.WriteVmStateAsync(100, new IoVector(state.AsMemory(0, 1000)));
        await node.WriteVmStateAsync(1100, new IoVector(state.AsMemory(1000)));
        var back = new byte[3000];
        await node.ReadVmStateAsync(100, new IoVector(back));
        Assert.Equal(state, back);
        var head = new byte[100];
        await node.ReadVmStateAsync(0, new IoVector(head));
        Assert.All(head, x => Assert.Equal(0, x));
    }

    [Fact]
    public async Task Created_luks_images_have_qemus_layout_byte_for_byte_outside_the_luks_area()
    {
        using var dir = new TempDirectory();
        string ours = dir.File("ours.qcow2");
        string theirs = dir.File("theirs.qcow2");
        const string options = "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,preallocation=metadata,cluster_size=16k";
        QemuCreate(theirs, "1M", options);
        await using (var graph = NewGraph())
            await CreateAsync(graph, ours, 1 << 20, options);

        var (offset, length) = LuksArea(theirs);
        Assert.Equal((offset, length), LuksArea(ours));
        byte[] a = File.ReadAllBytes(theirs), b = File.ReadAllBytes(ours);
        Assert.Equal(a.Length, b.Length);
        Qcow2Images.AssertSameBytes(a.AsMemory(0, (int)offset), b.AsMemory(0, (int)offset), "before the LUKS area");
        long end = offset + length;
        Qcow2Images.AssertSameBytes(a.AsMemory((int)end), b.AsMemory((int)end), "after the LUKS area");
        AssertQemuCheckClean(ours);
    }

    private static async Task WriteAsync(BlockBackend backend, ByteModel model, int offset, int length, int seed)
    {
        var data = Patterns.Random(length, seed);
        await backend.WriteAsync(offset, data);
        model.Write(offset, data);
    }
}
