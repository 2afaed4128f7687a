using System.Buffers.Binary;
using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// <c>blk check</c> on qcow2 images damaged in each way <c>qemu-img check</c> looks for prints what qemu-img prints
/// and exits as it exits, with and without <c>-r leaks</c> / <c>-r all</c>; a repair leaves an image that qemu-img
/// finds as clean (or as damaged) as the one its own repair leaves, with the same header (refcount table moved to the
/// same place by a rebuild, dirty and corrupt bits cleared alike) and the same content.
/// </summary>
public class Qcow2CheckRepairOracleTests
{
    private const ulong OffsetMask = 0x00ff_ffff_ffff_fe00UL;
    private const ulong Copied = 1UL << 63;
    private const int ClusterSize = 65536;

    /// <summary>The images the damages start from.</summary>
    private enum Start
    {
        /// <summary>v3, 4 MiB: three data clusters, a compressed one, a zero one.</summary>
        Plain,
        /// <summary>The same as a v2 (compat=0.10) image.</summary>
        Version2,
        /// <summary>Plain with a snapshot sharing the second data cluster and the compressed one (the first rewritten since).</summary>
        Snapshot,
        /// <summary>lazy_refcounts=on, and qemu-io killed after two more writes: dirty, with refcounts never written.</summary>
        LazyRefcountsDirty,
    }

    private static readonly Dictionary<string, (Start Start, Action<Poker> Damage)> s_damages = new()
    {
        ["data-refcount-2"] = (Start.Plain, q => q.SetRefcount(q.Data0, 2)),
        ["data-refcount-0"] = (Start.Plain, q => q.SetRefcount(q.Data0, 0)),
        ["leaked-cluster"] = (Start.Plain, q => q.SetL2Entry(q.L2, 2, 0)),
        ["copied-flag-cleared"] = (Start.Plain, q => q.SetL2Entry(q.L2, 0, q.L2Entry(q.L2, 0) & ~Copied)),
        ["copied-flag-on-shared"] = (Start.Plain, q =>
        {
            q.SetRefcount(q.Data0, 2);
            q.SetL2Entry(q.L2, 1, q.L2Entry(q.L2, 0));
        }),
        ["l2-refcount-2"] = (Start.Plain, q => q.SetRefcount(q.L2, 2)),
        ["l2-refcount-0"] = (Start.Plain, q => q.SetRefcount(q.L2, 0)),
        ["unaligned-data-offset"] = (Start.Plain, q => q.SetL2Entry(q.L2, 1, q.L2Entry(q.L2, 1) + 512)),
        ["unaligned-l2-offset"] = (Start.Plain, q => q.SetL1Entry(0, q.L1Entry(0) + 512)),
        ["refblock-refcount-2"] = (Start.Plain, q => q.SetRefcount(q.RefblockOffset(0), 2)),
        ["compressed-with-copied"] = (Start.Plain, q => q.SetL2Entry(q.L2, 16, q.L2Entry(q.L2, 16) | Copied)),
        // The file ends inside a sector (compressed data): file length + 64 MiB has reserved bits set.
        ["reftable-entry-reserved-bits"] = (Start.Plain, q => q.SetReftableEntry(0, (ulong)(q.FileLength + (64 << 20)))),
        ["refblock-past-the-end"] = (Start.Plain, q => q.SetReftableEntry(0, (ulong)(q.FileLength + ClusterSize - 1) / ClusterSize * ClusterSize + (64 << 20))),
        ["reftable-refcount-0"] = (Start.Plain, q => q.SetRefcount(q.ReftableOffset, 0)),
        ["reftable-entry-0-cleared"] = (Start.Plain, q => q.SetReftableEntry(0, 0)),
        // Reading refcounts through it marks the image corrupt, so that the rebuild cannot write and the check fails.
        ["refblock-unaligned"] = (Start.Plain, q => q.SetReftableEntry(0, (ulong)q.RefblockOffset(0) + 512)),
        ["refblock-listed-twice"] = (Start.Plain, q => q.SetReftableEntry(1, (ulong)q.RefblockOffset(0))),
        ["two-l2-entries-one-cluster"] = (Start.Plain, q => q.SetL2Entry(q.L2, 1, q.L2Entry(q.L2, 0))),
        ["l1-copied-flag-cleared"] = (Start.Plain, q => q.SetL1Entry(0, q.L1Entry(0) & ~Copied)),
        ["l1-entry-reserved-bits"] = (Start.Plain, q => q.SetL1Entry(0, q.L1Entry(0) | 2)),
        ["l2-entry-reserved-bits-and-l2-refcount-0"] = (Start.Plain, q =>
        {
            q.SetL2Entry(q.L2, 0, q.L2Entry(q.L2, 0) | 2);
            q.SetRefcount(q.L2, 0);
        }),
        ["l2-table-past-the-end"] = (Start.Plain, q => q.SetL1Entry(0, Copied | 0x20_0000)),
        // The rebuilt refcount structure goes into the holes the leaks leave.
        ["two-leaks-and-data-refcount-0"] = (Start.Plain, q =>
        {
            q.SetL2Entry(q.L2, 1, 0);
            q.SetL2Entry(q.L2, 2, 0);
            q.SetRefcount(q.Data0, 0);
        }),
        ["corrupt-bit-and-leak"] = (Start.Plain, q =>
        {
            q.SetIncompatibleBits(2);
            q.SetL2Entry(q.L2, 2, 0);
        }),
        ["v2-data-refcount-0"] = (Start.Version2, q => q.SetRefcount(q.Data0, 0)),
        ["v2-leaked-cluster"] = (Start.Version2, q => q.SetL2Entry(q.L2, 2, 0)),
        ["snapshot-intact"] = (Start.Snapshot, _ => { }),
        // The snapshot's L1 points at an L2 table (and through it at a data cluster) the refcounts say are free.
        ["snapshot-tables-freed"] = (Start.Snapshot, q =>
        {
            long l2 = (long)(q.ReadU64(q.SnapshotL1Offset(0)) & OffsetMask);
            q.SetRefcount(l2, 0);
            q.SetRefcount((long)(q.L2Entry(l2, 0) & OffsetMask), 0);
        }),
        ["snapshot-l1-unaligned"] = (Start.Snapshot, q => q.SetSnapshotL1Offset(0, q.SnapshotL1Offset(0) + 512)),
        ["snapshot-l1-past-the-end"] = (Start.Snapshot, q => q.SetSnapshotL1Offset(0, 0x100_0000)),
        ["snapshot-shared-cluster-refcount-1"] = (Start.Snapshot, q => q.SetRefcount((long)(q.L2Entry(q.L2, 1) & OffsetMask), 1)),
        ["lazy-refcounts-dirty"] = (Start.LazyRefcountsDirty, _ => { }),
    };

    public static TheoryData<string, string> DamagesAndModes()
    {
        var data = new TheoryData<string, string>();
        foreach (var damage in s_damages.Keys)
        {
            foreach (var mode in new[] { "none", "json", "leaks", "all", "json-all" })
                data.Add(damage, mode);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(DamagesAndModes))]
    public void Check_and_repair_say_and_leave_what_qemu_img_does(string damage, string mode)
    {
        using var s = new SideBySide();
        var (start, poke) = s_damages[damage];
        s.InBoth(dir =>
        {
            string path = Make(dir.File("d.qcow2"), start);
            poke(new Poker(path));
        });
        string[] args = mode switch
        {
            "json" => ["check", "--output=json", "@d.qcow2"],
            "leaks" => ["check", "-r", "leaks", "@d.qcow2"],
            "all" => ["check", "-r", "all", "@d.qcow2"],
            "json-all" => ["check", "--output=json", "-r", "all", "@d.qcow2"],
            _ => ["check", "@d.qcow2"],
        };
        SideBySide.AssertSame(s.Img(args));
        if (mode is "none" or "json")
            return;

        // What qemu-img now says of each repaired image, its header, and what each holds.
        SideBySide.AssertSame(s.Oracle("check", "@d.qcow2"));
        Assert.Equal(Header(s.Qemu("d.qcow2")), Header(s.Blk("d.qcow2")));
        var raw = s.Oracle("convert", "-O", "raw", "@d.qcow2", "@d.raw");
        SideBySide.AssertSame(raw);
        if (raw.Qemu.ExitCode == 0)
            s.AssertSameBytes("d.raw");
    }

    /// <summary>The header fields (v3 length): table offsets and sizes, feature bits.</summary>
    private static string Header(string path)
    {
        using var f = File.OpenRead(path);
        var bytes = new byte[104];
        f.ReadExactly(bytes);
        return Convert.ToHexString(bytes);
    }

    private static string Make(string path, Start start)
    {
        const string Writes0 = "write -P 0xa1 0 64k", Writes1 = "write -P 0xa2 64k 64k", Writes2 = "write -P 0xa3 128k 64k";
        string[] writes = [Writes0, Writes1, Writes2, "write -c -P 0xc1 1M 64k", "write -z 2M 64k"];
        switch (start)
        {
            case Start.Plain:
                QemuImg.Create("qcow2", path, "4M");
                QemuIo.RunChecked(path, "qcow2", writes);
                break;
            case Start.Version2:
                QemuImg.Create("qcow2", path, "4M", "compat=0.10");
                QemuIo.RunChecked(path, "qcow2", writes);
                break;
            case Start.Snapshot:
                QemuImg.Create("qcow2", path, "4M");
                QemuIo.RunChecked(path, "qcow2", writes);
                QemuIo.RunChecked(path, "qcow2", "discard 128k 64k");
                QemuImg.Run("snapshot", "-c", "s1", path).EnsureSuccess("qemu-img snapshot");
                QemuIo.RunChecked(path, "qcow2", "write -P 0xb1 0 64k");
                break;
            case Start.LazyRefcountsDirty:
                QemuImg.Create("qcow2", path, "4M", "lazy_refcounts=on");
                QemuIo.RunChecked(path, "qcow2", Writes0, Writes1);
                // qemu-io aborts without closing the image: the dirty bit stays, the refcounts are not written.
                QemuIo.Run(path, "qcow2", Writes2, "write -P 0xa4 1M 64k", "abort");
                break;
        }
        return path;
    }

    /// <summary>Reads and pokes the tables of a 64 KiB-cluster, 16-bit-refcount qcow2 image.</summary>
    private sealed class Poker(string path)
    {
        public long FileLength => new FileInfo(path).Length;

        /// <summary>The first L2 table of the active L1.</summary>
        public long L2 => (long)(L1Entry(0) & OffsetMask);

        /// <summary>The data cluster guest cluster 0 maps to.</summary>
        public long Data0 => (long)(L2Entry(L2, 0) & OffsetMask);

        public long ReftableOffset => (long)ReadU64(48);

        public long RefblockOffset(int index) => (long)ReadU64(ReftableOffset + index * 8L);

        public void SetReftableEntry(int index, ulong value) => WriteU64(ReftableOffset + index * 8L, value);

        public ulong L1Entry(int index) => ReadU64((long)ReadU64(40) + index * 8L);

        public void SetL1Entry(int index, ulong value) => WriteU64((long)ReadU64(40) + index * 8L, value);

        public ulong L2Entry(long l2, int index) => ReadU64(l2 + index * 8L);

        public void SetL2Entry(long l2, int index, ulong value) => WriteU64(l2 + index * 8L, value);

        public void SetIncompatibleBits(ulong bits) => WriteU64(72, ReadU64(72) | bits);

        /// <summary>Snapshot <paramref name="index"/>'s L1 table offset (the first field of its table entry).</summary>
        public long SnapshotL1Offset(int index) => (long)ReadU64(SnapshotEntry(index));

        public void SetSnapshotL1Offset(int index, long value) => WriteU64(SnapshotEntry(index), (ulong)value);

        public void SetRefcount(long hostOffset, ushort value)
        {
            long cluster = hostOffset / ClusterSize;
            long block = RefblockOffset((int)(cluster / (ClusterSize / 2)));
            var bytes = new byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
            Write(block + cluster % (ClusterSize / 2) * 2, bytes);
        }

        public ulong ReadU64(long offset)
        {
            using var f = File.OpenRead(path);
            var bytes = new byte[8];
            f.Position = offset;
            f.ReadExactly(bytes);
            return BinaryPrimitives.ReadUInt64BigEndian(bytes);
        }

        private long SnapshotEntry(int index)
        {
            long entry = (long)ReadU64(64);
            for (int i = 0; i < index; i++)
            {
                using var f = File.OpenRead(path);
                var fixedPart = new byte[40];
                f.Position = entry;
                f.ReadExactly(fixedPart);
                int idLength = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(12));
                int nameLength = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(14));
                int extra = (int)BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(36));
                entry += (40 + extra + idLength + nameLength + 7) & ~7;
            }
            return entry;
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
