using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Formats.Tests.Parallels;

/// <summary>
/// The Parallels Format Extension (dirty bitmaps), written by the test from docs/interop/parallels.rst: a read-only
/// open loads each bitmap as qemu-storage-daemon 7.2 lists it, a writable open ignores the extension with QEMU's
/// warning and writes the file as qemu-io does, and every damaged field is refused with qemu-io's message.
/// </summary>
public class ParallelsFormatExtensionTests
{
    private const int ClusterSize = 1 << 20;
    private const long DiskSize = 64L << 20;
    private const ulong DiskSectors = DiskSize / 512;
    private const uint GranularitySectors = 128;
    private const ulong BitmapMagic = 0x20385FAE252CB34A;
    private static readonly Guid Id1 = new("12345678-9abc-def0-1234-56789abcdef0");
    private static readonly Guid Id2 = new("abcdef01-2345-6789-abcd-ef0123456789");

    /// <summary>Bits of the test's bitmap: every third 64 KiB granule dirty.</summary>
    private static bool Dirty(long bit) => bit % 3 == 0;

    [Fact]
    public async Task A_read_only_open_loads_the_bitmaps_as_qemu_storage_daemon_lists_them()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir, "b.prl", ext => [Section(BitmapMagic, Feature(Id1, [ext.DataCluster])),
            Section(BitmapMagic, Feature(Id2, [1])), Section(BitmapMagic, Feature(new Guid("00000000-0000-0000-0000-000000000001"), [0]))]);

        var expected = await QsdBitmapsAsync(image);
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "parallels", readOnly: true);
        var node = backend.Root!;
        var ours = new JsonArray([.. node.QueryDirtyBitmaps()!.Select(b => (JsonNode)new JsonObject
        {
            ["name"] = b.Name,
            ["recording"] = b.Recording,
            ["persistent"] = b.Persistent,
            ["busy"] = b.Busy,
            ["granularity"] = b.Granularity,
            ["count"] = b.Count,
        })]);
        Assert.Equal(expected.ToJsonString(), ours.ToJsonString());

        var first = node.FindDirtyBitmap(Id1.ToString())!;
        long bits = DiskSize / (GranularitySectors * 512);
        for (long bit = 0; bit < bits; bit++)
            Assert.Equal(Dirty(bit), first.IsDirty(bit * GranularitySectors * 512));
        Assert.True(first.ReadOnly);
        var e = Assert.ThrowsAny<BlockException>(() => node.ClearDirtyBitmap(Id1.ToString()));
        Assert.Equal($"Bitmap '{Id1}' is readonly and cannot be modified", e.Message);
    }

    [Fact]
    public void A_writable_open_warns_and_writes_the_file_as_qemu_io_does()
    {
        using var dir = new TempDirectory();
        string ours = MakeImage(dir, "o.prl", ext => [Section(BitmapMagic, Feature(Id1, [ext.DataCluster]))]);
        string theirs = dir.File("q.prl");
        File.Copy(ours, theirs);

        var q = ProcessRunner.Run(QemuIo.Path, ["-f", "parallels", "-c", "write -P 0x22 2M 64k", "-c", "read -P 0x11 0 64k", theirs]);
        var b = BlkRunner.Run("io", "-f", "parallels", "-c", "write -P 0x22 2M 64k", "-c", "read -P 0x11 0 64k", ours);
        Assert.Equal(0, q.ExitCode);
        Assert.Contains("qemu-io: warning: Format Extension ignored in RW mode", q.Stderr, StringComparison.Ordinal);
        Assert.Equal(BlkRunner.AsBlk(q.Stderr), b.Stderr);
        Assert.Equal(0, b.ExitCode);
        // QEMU 7.2 treats the extension's clusters as free space in this mode: the write's new cluster lands on the
        // extension, and ext_off stays, so a later read-only open fails on its magic. Both files are byte for byte
        // the same.
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
    }

    public static TheoryData<string> Damages() => [.. s_damages.Keys];

    [Theory]
    [MemberData(nameof(Damages))]
    public void A_damaged_extension_is_refused_with_qemus_message(string damage)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir, "d.prl", s_damages[damage], badChecksum: damage == "checksum", badMagic: damage == "magic");

        var q = ProcessRunner.Run(QemuIo.Path, ["-r", "-f", "parallels", "-c", "read 0 4k", image]);
        var b = BlkRunner.Run("io", "-r", "-f", "parallels", "-c", "read 0 4k", image);
        Assert.Equal(1, q.ExitCode);
        Assert.Equal(1, b.ExitCode);
        Assert.Equal(BlkRunner.AsBlk(q.Stderr), b.Stderr);
    }

    [Fact]
    public void A_granularity_qemu_7_2_aborts_on_is_refused_naming_it()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir, "g.prl", ext => [Section(BitmapMagic, Feature(Id1, [ext.DataCluster], granularitySectors: 3))]);
        var b = BlkRunner.Run("io", "-r", "-f", "parallels", "-c", "read 0 4k", image);
        Assert.Equal(1, b.ExitCode);
        Assert.Contains("Invalid bitmap granularity 1536, expected a power of two of at least 512 bytes", b.Stderr, StringComparison.Ordinal);
    }

    private static readonly Dictionary<string, Func<Extension, byte[][]>> s_damages = new()
    {
        ["magic"] = ext => [Section(BitmapMagic, Feature(Id1, [ext.DataCluster]))],
        ["checksum"] = ext => [Section(BitmapMagic, Feature(Id1, [ext.DataCluster]))],
        ["flags"] = ext => [Section(BitmapMagic, Feature(Id1, [ext.DataCluster]), flags: 1)],
        ["data size past the cluster"] = ext => [Section(BitmapMagic, Feature(Id1, [ext.DataCluster]), dataSize: ClusterSize)],
        ["unknown feature"] = _ => [Section(0x1234, new byte[8])],
        ["bitmap size"] = ext => [Section(BitmapMagic, Feature(Id1, [ext.DataCluster], sizeSectors: DiskSectors + 1))],
        ["l1 past the feature"] = ext => [Section(BitmapMagic, Feature(Id1, [ext.DataCluster], l1Size: 5))],
        ["l1 size"] = _ => [Section(BitmapMagic, Feature(Id1, [1, 1]))],
        ["feature too small"] = _ => [Section(BitmapMagic, new byte[16])],
        ["duplicate id"] = ext => [Section(BitmapMagic, Feature(Id1, [ext.DataCluster])), Section(BitmapMagic, Feature(Id1, [1]))],
    };

    /// <summary>Where the extension's clusters go: the extension at <see cref="ExtOffset"/>, one bitmap data cluster after it.</summary>
    public sealed record Extension(long ExtOffset, ulong DataCluster);

    /// <summary>
    /// A 64 MiB image made by qemu-img with 1 MiB of 0x11 written by qemu-io, and a Format Extension cluster after its
    /// data holding <paramref name="sections"/> and an end-of-features section, then one bitmap data cluster.
    /// </summary>
    private static string MakeImage(TempDirectory dir, string name, Func<Extension, byte[][]> sections, bool badChecksum = false, bool badMagic = false)
    {
        string image = dir.File(name);
        QemuImg.Create("parallels", image, "64M");
        Images.QemuIo(image, "parallels", "write -P 0x11 0 1M");
        long end = (new FileInfo(image).Length + ClusterSize - 1) / ClusterSize * ClusterSize;
        var ext = new Extension(end, (ulong)(end + ClusterSize) / 512);

        var cluster = new byte[ClusterSize];
        int at = 24;
        foreach (var section in sections(ext))
        {
            section.CopyTo(cluster, at);
            at += section.Length;
        }
        BinaryPrimitives.WriteUInt64LittleEndian(cluster, badMagic ? 0x1122334455667788 : 0xAB234CEF23DCEA87);
        if (!badChecksum)
            MD5.HashData(cluster.AsSpan(24)).CopyTo(cluster, 8);

        long bits = DiskSize / (GranularitySectors * 512);
        var data = new byte[ClusterSize];
        for (long bit = 0; bit < bits; bit++)
        {
            if (Dirty(bit))
                data[bit / 8] |= (byte)(1 << (int)(bit % 8));
        }
        using (var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = ext.ExtOffset;
            f.Write(cluster);
            f.Write(data);
        }
        ParallelsImages.Patch(image, 56, (ulong)ext.ExtOffset / 512, 8);
        return image;
    }

    /// <summary>A feature section: its header, then its data padded to 8 bytes.</summary>
    private static byte[] Section(ulong magic, byte[] data, ulong flags = 0, uint? dataSize = null)
    {
        var section = new byte[24 + (data.Length + 7) / 8 * 8];
        BinaryPrimitives.WriteUInt64LittleEndian(section, magic);
        BinaryPrimitives.WriteUInt64LittleEndian(section.AsSpan(8), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(section.AsSpan(16), dataSize ?? (uint)data.Length);
        data.CopyTo(section, 24);
        return section;
    }

    /// <summary>A dirty bitmap feature's data: disk size, id, granularity, L1 size, L1 table.</summary>
    private static byte[] Feature(Guid id, ulong[] l1, ulong sizeSectors = DiskSectors, uint granularitySectors = GranularitySectors, uint? l1Size = null)
    {
        var data = new byte[32 + 8 * l1.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(data, sizeSectors);
        id.TryWriteBytes(data.AsSpan(8), bigEndian: true, out _);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(24), granularitySectors);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(28), l1Size ?? (uint)l1.Length);
        for (int i = 0; i < l1.Length; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(32 + 8 * i), l1[i]);
        return data;
    }

    /// <summary>The bitmaps of a read-only parallels node of qemu-storage-daemon 7.2, as <c>query-named-block-nodes</c> lists them.</summary>
    private static async Task<JsonArray> QsdBitmapsAsync(string image)
    {
        await using var qsd = await QemuStorageDaemon.StartAsync(
            "--blockdev", $"driver=file,node-name=f,filename={image},read-only=on",
            "--blockdev", "driver=parallels,node-name=p,file=f,read-only=on");
        var nodes = (await qsd.ExecuteOkAsync("query-named-block-nodes", new JsonObject { ["flat"] = true }))!.AsArray();
        var node = nodes.Single(n => n!["node-name"]!.GetValue<string>() == "p")!;
        return node["dirty-bitmaps"]!.AsArray();
    }
}
