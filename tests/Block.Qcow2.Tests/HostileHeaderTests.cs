using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// Headers with out-of-range fields (iotest 080's ideas, poked into a qemu-made image): every one is refused at open
/// with a message that names the field — the same message qemu-io prints where QEMU refuses too — and nothing hangs
/// or allocates by the size the header claims.
/// </summary>
public class HostileHeaderTests
{
    /// <summary>A 64 MiB image with one written cluster: header, reftable at 64k, refblock at 128k, L1 at 192k, L2 at 256k, data at 320k.</summary>
    internal static string MakeImage(TempDirectory dir, string name = "img.qcow2", string? options = null)
    {
        string path = dir.File(name);
        QemuImg.Create("qcow2", path, "64M", options);
        QemuIo.RunChecked(path, "qcow2", "write -P 0x2a 0 512");
        return path;
    }

    /// <summary>Offset, bytes to write there (hex), and the message both QEMU and the library give.</summary>
    public static TheoryData<string, int, string, string> Refused() => new()
    {
        { "L1 table larger than 32 MiB", ImageFile.L1Size, "10000000", "Active L1 table too large" },
        { "L1 table too small for the disk", ImageFile.L1Size, "00000000", "L1 table is too small" },
        { "unaligned L1 table", ImageFile.L1TableOffset, "0000000000030200", "Active L1 table offset invalid" },
        { "refcount table larger than 8 MiB", ImageFile.RefcountTableClusters, "00ffffff", "Reference count table too large" },
        { "no refcount table", ImageFile.RefcountTableClusters, "00000000", "Image does not contain a reference count table" },
        { "unaligned refcount table", ImageFile.RefcountTableOffset, "0000000000010200", "Reference count table offset invalid" },
        { "four billion snapshots", ImageFile.NbSnapshots, "ffffffff", "Snapshot table too large" },
        { "unaligned snapshot table", ImageFile.SnapshotsOffset, "0000000000000200", "Snapshot table offset invalid" },
        { "cluster_bits 8", ImageFile.ClusterBits, "00000008", "Unsupported cluster size: 2^8" },
        { "cluster_bits 22", ImageFile.ClusterBits, "00000016", "Unsupported cluster size: 2^22" },
        { "cluster_bits 2^32-ish", ImageFile.ClusterBits, "ff000010", "Unsupported cluster size: 2^4278190096" },
        { "128-bit refcounts", ImageFile.RefcountOrder, "00000007", "Reference count entry width too large; may not exceed 64 bits" },
        { "header longer than a cluster", ImageFile.HeaderLength, "00010008", "qcow2 header exceeds cluster size" },
        { "header shorter than version 3's", ImageFile.HeaderLength, "00000064", "qcow2 header too short" },
        { "version 4", ImageFile.Version, "00000004", "Unsupported qcow2 version 4" },
        { "unknown incompatible feature", ImageFile.IncompatibleFeatures, "0000000000000400", "Unsupported qcow2 feature(s): Unknown incompatible feature: 400" },
        { "two unknown incompatible features", ImageFile.IncompatibleFeatures, "8000000000000400", "Unsupported qcow2 feature(s): Unknown incompatible feature: 8000000000000400" },
        { "virtual size of 8 EiB", ImageFile.Size, "7fffffffffffffff", "Image is too big" },
        { "virtual size of 4 EiB", ImageFile.Size, "4000000000000000", "Image is too big" },
        { "virtual size of 32 PiB", ImageFile.Size, "0080000000000000", "L1 table is too small" },
        { "encryption method 3", ImageFile.CryptMethod, "00000003", "Unsupported encryption method 3" },
        { "LUKS encryption without its header extension", ImageFile.CryptMethod, "00000002", "Missing CRYPTO header for crypt method 2" },
        { "backing file name of 2000 bytes", ImageFile.BackingFileOffset, "0000000000001000000007d0", "Backing file name too long" },
        { "backing file name running past the header cluster", ImageFile.BackingFileOffset, "000000000000fde8000003e8", "Backing file name too long" },
        { "backing file name outside the header cluster", ImageFile.BackingFileOffset, "000000000002000000000010", "Invalid backing file offset" },
        { "header extension longer than the cluster", 116, "fffffff0", "Header extension too large" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task A_header_field_out_of_range_is_refused_with_qemus_message(string what, int offset, string hex, string message)
    {
        using var dir = new TempDirectory();
        string path = MakeImage(dir);
        ImageFile.PokeHex(path, offset, hex);

        var qemu = QemuIo.Run(path, "qcow2", "read 0 512");
        Assert.Contains(message, qemu.Stderr);

        foreach (bool readOnly in new[] { true, false })
        {
            await using var graph = Qcow2Images.NewGraph();
            var e = await Hostile.RefusedAsync(() => Qcow2Images.OpenAsync(graph, path, readOnly).AsTask());
            Assert.True(e.Message.Contains(message, StringComparison.Ordinal), $"{what}: the library said \"{e.Message}\", qemu \"{message}\"");
            Assert.Empty(graph.Nodes);
        }
    }

    public static TheoryData<string, int, string, string> TablesPastTheEnd() => new()
    {
        { "L1 table", ImageFile.L1TableOffset, "0000010000000000", "Invalid L1 table offset" },
        { "refcount table", ImageFile.RefcountTableOffset, "0000010000000000", "Invalid reference count table offset" },
        { "snapshot table", ImageFile.NbSnapshots, "000000010000010000000000", "Snapshot table offset invalid" },
    };

    /// <summary>
    /// qemu opens these (it reads zeroes past the end of the file, so the table reads as empty); the library refuses
    /// them, naming the table, rather than run an image whose tables are not there.
    /// </summary>
    [Theory]
    [MemberData(nameof(TablesPastTheEnd))]
    public async Task A_table_past_the_end_of_the_file_is_refused_naming_the_table(string what, int offset, string hex, string message)
    {
        using var dir = new TempDirectory();
        string path = MakeImage(dir);
        ImageFile.PokeHex(path, offset, hex);
        await using var graph = Qcow2Images.NewGraph();
        var e = await Hostile.RefusedAsync(() => Qcow2Images.OpenAsync(graph, path, readOnly: true).AsTask());
        Assert.True(e.Message.Contains(message, StringComparison.Ordinal), $"{what}: {e.Message}");
    }
}
