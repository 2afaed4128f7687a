using System.Buffers.Binary;
using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// <c>blk check</c> on qcow2 images damaged in each way <c>qemu-img check</c> looks for prints what qemu-img prints
/// and exits as it exits, with and without <c>-r leaks</c> / <c>-r all</c>; a repair leaves an image that qemu-img
/// finds as clean (or as damaged) as the one its own repair leaves, with the same content.
/// </summary>
public class Qcow2CheckRepairOracleTests
{
    private static readonly string[] s_damages =
    [
        "data-refcount-2", "data-refcount-0", "leaked-cluster", "copied-flag-cleared", "copied-flag-on-shared",
        "l2-refcount-2", "l2-refcount-0", "unaligned-data-offset", "unaligned-l2-offset", "refblock-refcount-2",
        "compressed-with-copied", "refblock-past-the-end", "reftable-refcount-0", "two-l2-entries-one-cluster",
    ];

    public static TheoryData<string, string> DamagesAndModes()
    {
        var data = new TheoryData<string, string>();
        foreach (var damage in s_damages)
        {
            foreach (var mode in new[] { "none", "json", "leaks", "all" })
                data.Add(damage, mode);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(DamagesAndModes))]
    public void Check_and_repair_say_and_leave_what_qemu_img_does(string damage, string mode)
    {
        using var s = new SideBySide();
        s.InBoth(dir => Damage(Make(dir.File("d.qcow2")), damage));
        string[] args = mode switch
        {
            "json" => ["check", "--output=json", "@d.qcow2"],
            "leaks" => ["check", "-r", "leaks", "@d.qcow2"],
            "all" => ["check", "-r", "all", "@d.qcow2"],
            _ => ["check", "@d.qcow2"],
        };
        if (Environment.GetEnvironmentVariable("BLK_DUMP") is { } dump0)
        {
            Directory.CreateDirectory(dump0);
            File.Copy(s.Qemu("d.qcow2"), Path.Combine(dump0, $"{damage}-{mode}.img"), true);
        }
        var r = s.Img(args);
        if (Environment.GetEnvironmentVariable("BLK_DUMP") is { } dump)
        {
            Directory.CreateDirectory(dump);
            File.WriteAllText(Path.Combine(dump, $"{damage}-{mode}.qemu"), $"{r.Qemu.Stdout}--stderr--\n{r.Qemu.Stderr}--rc {r.Qemu.ExitCode}\n");
            File.WriteAllText(Path.Combine(dump, $"{damage}-{mode}.blk"), $"{r.Blk.Stdout}--stderr--\n{r.Blk.Stderr}--rc {r.Blk.ExitCode}\n");
        }
        SideBySide.AssertSame(r);
        if (mode is "leaks" or "all")
        {
            // What qemu-img now says of each repaired image, and what each holds.
            SideBySide.AssertSame(s.Oracle("check", "@d.qcow2"));
            var raw = s.Oracle("convert", "-O", "raw", "@d.qcow2", "@d.raw");
            SideBySide.AssertSame(raw);
            if (raw.Qemu.ExitCode == 0)
                s.AssertSameBytes("d.raw");
        }
    }

    /// <summary>A 4 MiB image: three data clusters, a compressed one, a zero one, and a snapshot sharing the first.</summary>
    private static string Make(string path)
    {
        QemuImg.Create("qcow2", path, "4M");
        QemuIo.RunChecked(path, "qcow2", "write -P 0xa1 0 64k", "write -P 0xa2 64k 64k", "write -P 0xa3 128k 64k",
            "write -c -P 0xc1 1M 64k", "write -z 2M 64k");
        return path;
    }

    private static string Damage(string path, string damage)
    {
        var q = new Poker(path);
        long l2 = q.L2Offset(0);
        long data0 = (long)(q.L2Entry(l2, 0) & OffsetMask);
        switch (damage)
        {
            case "data-refcount-2":
                q.SetRefcount(data0, 2);
                break;
            case "data-refcount-0":
                q.SetRefcount(data0, 0);
                break;
            case "leaked-cluster":
                q.SetL2Entry(l2, 2, 0);
                break;
            case "copied-flag-cleared":
                q.SetL2Entry(l2, 0, q.L2Entry(l2, 0) & ~Copied);
                break;
            case "copied-flag-on-shared":
                q.SetRefcount(data0, 2);
                q.SetL2Entry(l2, 1, q.L2Entry(l2, 0));
                break;
            case "l2-refcount-2":
                q.SetRefcount(l2, 2);
                break;
            case "l2-refcount-0":
                q.SetRefcount(l2, 0);
                break;
            case "unaligned-data-offset":
                q.SetL2Entry(l2, 1, q.L2Entry(l2, 1) + 512);
                break;
            case "unaligned-l2-offset":
                q.SetL1Entry(0, q.L1Entry(0) + 512);
                break;
            case "refblock-refcount-2":
                q.SetRefcount(q.RefblockOffset(0), 2);
                break;
            case "compressed-with-copied":
                q.SetL2Entry(l2, 16, q.L2Entry(l2, 16) | Copied);
                break;
            case "refblock-past-the-end":
                q.SetReftableEntry(0, (ulong)(new FileInfo(path).Length + (64 << 20)));
                break;
            case "reftable-refcount-0":
                q.SetRefcount(q.ReftableOffset, 0);
                break;
            case "two-l2-entries-one-cluster":
                q.SetL2Entry(l2, 1, q.L2Entry(l2, 0));
                break;
            default:
                throw new ArgumentException(damage);
        }
        return path;
    }

    private const ulong OffsetMask = 0x00ff_ffff_ffff_fe00UL;
    private const ulong Copied = 1UL << 63;

    /// <summary>Reads and pokes the tables of a 64 KiB-cluster, 16-bit-refcount qcow2 image.</summary>
    private sealed class Poker(string path)
    {
        private const int ClusterSize = 65536;

        public long ReftableOffset => (long)ReadU64(48);

        public long RefblockOffset(int index) => (long)ReadU64(ReftableOffset + index * 8L);

        public void SetReftableEntry(int index, ulong value) => WriteU64(ReftableOffset + index * 8L, value);

        public ulong L1Entry(int index) => ReadU64((long)ReadU64(40) + index * 8L);

        public void SetL1Entry(int index, ulong value) => WriteU64((long)ReadU64(40) + index * 8L, value);

        public long L2Offset(int l1Index) => (long)(L1Entry(l1Index) & OffsetMask);

        public ulong L2Entry(long l2, int index) => ReadU64(l2 + index * 8L);

        public void SetL2Entry(long l2, int index, ulong value) => WriteU64(l2 + index * 8L, value);

        public void SetRefcount(long hostOffset, ushort value)
        {
            long cluster = hostOffset / ClusterSize;
            long block = RefblockOffset((int)(cluster / (ClusterSize / 2)));
            var bytes = new byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
            Write(block + cluster % (ClusterSize / 2) * 2, bytes);
        }

        private ulong ReadU64(long offset)
        {
            using var f = File.OpenRead(path);
            var bytes = new byte[8];
            f.Position = offset;
            f.ReadExactly(bytes);
            return BinaryPrimitives.ReadUInt64BigEndian(bytes);
        }

        private void WriteU64(long offset, ulong value)
        {
            var bytes = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
            Write(offset, bytes);
        }

        private void Write(long offset, byte[] bytes)
        {
            using var f = File.OpenWrite(path);
            f.Position = offset;
            f.Write(bytes);
        }
    }
}
