using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Block.Drivers.Vvfat;

/// <summary>
/// The shape of a vvfat disk: its size, partition, FAT type and the regions of the FAT volume, and the sectors that
/// describe them (MBR, boot sector, FAT32's FSInfo).
/// </summary>
/// <remarks>
/// FAT12 and FAT16 are QEMU 7.2's layouts, observed with <c>qemu-img convert</c>: a hard disk of 1024·16·63 sectors
/// (64·16·63 for FAT12) with one partition at sector 63, or a floppy of 80·2·36 sectors (80·2·18 when FAT12 is asked
/// for) without a partition table; 16 sectors per cluster, one reserved sector, 512 root entries.
/// FAT32 is this library's own layout, because QEMU's is not a FAT32 volume (its boot sector is a FAT16 one with
/// 4-byte FAT entries, which mtools refuses with "Error reading FAT"): the same 504 MiB disk, 8 sectors per cluster so
/// that the volume has more than 65525 clusters (128760) and every FAT driver takes it for FAT32, 32 reserved
/// sectors with FSInfo at 1 and the boot sector's backup at 6, and the root directory in clusters from cluster 2.
/// </remarks>
public sealed class FatGeometry
{
    /// <summary>Bytes per sector.</summary>
    public const int SectorSize = 512;

    private const int HardDiskPartitionStart = 63;

    private FatGeometry(int fatType, bool floppy, long totalSectors, int sectorsPerTrack, int heads)
    {
        FatType = fatType;
        Floppy = floppy;
        TotalSectors = totalSectors;
        SectorsPerTrack = sectorsPerTrack;
        Heads = heads;
        PartitionStartSector = floppy ? 0 : HardDiskPartitionStart;
        PartitionSectors = totalSectors - PartitionStartSector;
        SectorsPerCluster = fatType == 32 ? 8 : 16;
        ReservedSectors = fatType == 32 ? 32 : 1;
        RootEntries = fatType == 32 ? 0 : 512;
        long clustersBeforeFat = (PartitionSectors - ReservedSectors - RootSectors) / SectorsPerCluster;
        SectorsPerFat = (int)((FatBytes(clustersBeforeFat + 2) + SectorSize - 1) / SectorSize);
        // QEMU counts the clusters of a hard disk as if the partition also started 63 sectors later, so its last four
        // clusters never hold data; the same limit gives the same "does not fit" boundary (FAT16: 64470 clusters).
        long dataSectors = PartitionSectors - FirstDataSector - (floppy || fatType == 32 ? 0 : HardDiskPartitionStart);
        UsableClusters = dataSectors / SectorsPerCluster;
    }

    /// <summary>12, 16 or 32.</summary>
    public int FatType { get; }

    /// <summary>A floppy (no MBR).</summary>
    public bool Floppy { get; }

    /// <summary>Sectors of the whole disk.</summary>
    public long TotalSectors { get; }

    /// <summary>The disk's length in bytes.</summary>
    public long LengthBytes => TotalSectors * SectorSize;

    /// <summary>CHS geometry: sectors per track.</summary>
    public int SectorsPerTrack { get; }

    /// <summary>CHS geometry: heads.</summary>
    public int Heads { get; }

    /// <summary>First sector of the FAT volume (63 on a hard disk, 0 on a floppy).</summary>
    public long PartitionStartSector { get; }

    /// <summary>Sectors of the FAT volume.</summary>
    public long PartitionSectors { get; }

    /// <summary>Sectors per cluster.</summary>
    public int SectorsPerCluster { get; }

    /// <summary>Bytes per cluster.</summary>
    public int ClusterBytes => SectorsPerCluster * SectorSize;

    /// <summary>Sectors before the first FAT.</summary>
    public int ReservedSectors { get; }

    /// <summary>Entries of the fixed root directory (0 for FAT32, whose root lives in clusters).</summary>
    public int RootEntries { get; }

    /// <summary>Sectors of the fixed root directory.</summary>
    public int RootSectors => RootEntries * 32 / SectorSize;

    /// <summary>Sectors of one FAT (there are two).</summary>
    public int SectorsPerFat { get; }

    /// <summary>First sector of the data area, from the start of the volume.</summary>
    public long FirstDataSector => ReservedSectors + 2L * SectorsPerFat + RootSectors;

    /// <summary>How many clusters may hold files and directories (cluster numbers 2 to this + 1).</summary>
    public long UsableClusters { get; }

    /// <summary>Byte offset of the volume in the disk.</summary>
    public long PartitionOffset => PartitionStartSector * SectorSize;

    /// <summary>Byte offset of FAT number <paramref name="copy"/> (0 or 1) in the disk.</summary>
    public long FatOffset(int copy) => PartitionOffset + (ReservedSectors + (long)copy * SectorsPerFat) * SectorSize;

    /// <summary>Byte offset of the fixed root directory in the disk.</summary>
    public long RootDirectoryOffset => PartitionOffset + (ReservedSectors + 2L * SectorsPerFat) * SectorSize;

    /// <summary>Byte offset of cluster <paramref name="cluster"/> (2 or more) in the disk.</summary>
    public long ClusterOffset(long cluster) => PartitionOffset + FirstDataSector * SectorSize + (cluster - 2) * ClusterBytes;

    /// <summary>The end-of-chain mark of this FAT type.</summary>
    public uint EndOfChain => FatType switch { 12 => 0xfff, 16 => 0xffff, _ => 0x0fffffff };

    /// <summary>The capacity QEMU names in "Directory does not fit": the volume's bytes in units of 1024·1000.</summary>
    public string CapacityText => (PartitionSectors * SectorSize / (1024.0 * 1000)).ToString("F2", CultureInfo.InvariantCulture);

    /// <summary>Bytes of a FAT with <paramref name="entries"/> entries.</summary>
    private long FatBytes(long entries) => FatType switch { 12 => (entries * 12 + 7) / 8, 16 => entries * 2, _ => entries * 4 };

    /// <summary>The geometry for <paramref name="fatType"/> (0 = default) and <paramref name="floppy"/>.</summary>
    /// <exception cref="BlockOptionsException">A FAT type other than 12, 16 or 32, or FAT32 on a floppy.</exception>
    public static FatGeometry Create(long fatType, bool floppy)
    {
        if (fatType is not (0 or 12 or 16 or 32))
            throw new BlockOptionsException("Valid FAT types are only 12, 16 and 32");
        if (floppy)
        {
            if (fatType == 32)
                throw new BlockOptionsException("vvfat: a floppy cannot hold FAT32 (a FAT32 volume needs at least 65525 clusters); use fat-type 12 or 16");
            // An explicit FAT12 floppy is a 1.44 MB one; the default (FAT12) and FAT16 floppies are 2.88 MB.
            int sectorsPerTrack = fatType == 12 ? 18 : 36;
            return new FatGeometry(fatType == 0 ? 12 : (int)fatType, floppy: true, 80L * 2 * sectorsPerTrack, sectorsPerTrack, 2);
        }
        int type = fatType == 0 ? 16 : (int)fatType;
        long cylinders = type == 12 ? 64 : 1024;
        return new FatGeometry(type, floppy: false, cylinders * 16 * 63, 63, 16);
    }

    /// <summary>The master boot record: one bootable partition of the volume (hard disks only).</summary>
    public byte[] MasterBootRecord()
    {
        var mbr = new byte[SectorSize];
        // Disk signature, as QEMU writes it.
        mbr[0x1b8] = 0xfa;
        mbr[0x1b9] = 0xfd;
        mbr[0x1ba] = 0x1a;
        mbr[0x1bb] = 0xbe;
        var entry = mbr.AsSpan(0x1be, 16);
        entry[0] = 0x80;
        WriteChs(entry[1..4], PartitionStartSector);
        entry[4] = FatType switch { 12 => 0x01, 16 => 0x06, _ => 0x0b };
        WriteChs(entry[5..8], TotalSectors - 1);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], (uint)PartitionStartSector);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[12..], (uint)PartitionSectors);
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        return mbr;
    }

    private void WriteChs(Span<byte> chs, long lba)
    {
        long cylinder = lba / (Heads * SectorsPerTrack);
        long head = lba / SectorsPerTrack % Heads;
        long sector = lba % SectorsPerTrack + 1;
        if (cylinder > 1023)
        {
            cylinder = 1023;
            head = Heads - 1;
            sector = SectorsPerTrack;
        }
        chs[0] = (byte)head;
        chs[1] = (byte)(sector | ((cylinder >> 2) & 0xc0));
        chs[2] = (byte)cylinder;
    }

    /// <summary>The volume's boot sector with <paramref name="label"/> (11 bytes, space-padded).</summary>
    public byte[] BootSector(ReadOnlySpan<byte> label)
    {
        var bs = new byte[SectorSize];
        bs[0] = 0xeb;
        bs[1] = FatType == 32 ? (byte)0x58 : (byte)0x3e;
        bs[2] = 0x90;
        "MSWIN4.1"u8.CopyTo(bs.AsSpan(3));
        BinaryPrimitives.WriteUInt16LittleEndian(bs.AsSpan(11), SectorSize);
        bs[13] = (byte)SectorsPerCluster;
        BinaryPrimitives.WriteUInt16LittleEndian(bs.AsSpan(14), (ushort)ReservedSectors);
        bs[16] = 2;
        BinaryPrimitives.WriteUInt16LittleEndian(bs.AsSpan(17), (ushort)RootEntries);
        if (PartitionSectors < 0x10000)
            BinaryPrimitives.WriteUInt16LittleEndian(bs.AsSpan(19), (ushort)PartitionSectors);
        else
            BinaryPrimitives.WriteUInt32LittleEndian(bs.AsSpan(32), (uint)PartitionSectors);
        bs[21] = Floppy ? (byte)0xf0 : (byte)0xf8;
        if (FatType != 32)
            BinaryPrimitives.WriteUInt16LittleEndian(bs.AsSpan(22), (ushort)SectorsPerFat);
        BinaryPrimitives.WriteUInt16LittleEndian(bs.AsSpan(24), (ushort)SectorsPerTrack);
        BinaryPrimitives.WriteUInt16LittleEndian(bs.AsSpan(26), (ushort)Heads);
        BinaryPrimitives.WriteUInt32LittleEndian(bs.AsSpan(28), (uint)PartitionStartSector);
        int ebpb = 36;
        if (FatType == 32)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bs.AsSpan(36), (uint)SectorsPerFat);
            BinaryPrimitives.WriteUInt32LittleEndian(bs.AsSpan(44), 2);
            BinaryPrimitives.WriteUInt16LittleEndian(bs.AsSpan(48), 1);
            BinaryPrimitives.WriteUInt16LittleEndian(bs.AsSpan(50), 6);
            ebpb = 64;
        }
        bs[ebpb] = Floppy ? (byte)0x00 : (byte)0x80;
        bs[ebpb + 2] = 0x29;
        // Volume serial number, as QEMU writes it.
        bs[ebpb + 3] = 0xfd;
        bs[ebpb + 4] = 0x1a;
        bs[ebpb + 5] = 0xbe;
        bs[ebpb + 6] = 0xfa;
        label.CopyTo(bs.AsSpan(ebpb + 7, 11));
        Encoding.ASCII.GetBytes($"FAT{FatType}   ").CopyTo(bs.AsSpan(ebpb + 18));
        bs[510] = 0x55;
        bs[511] = 0xaa;
        return bs;
    }

    /// <summary>FAT32's FSInfo sector, with the free cluster count and the next free cluster.</summary>
    public byte[] FsInfoSector(long usedClusters)
    {
        var fsinfo = new byte[SectorSize];
        BinaryPrimitives.WriteUInt32LittleEndian(fsinfo, 0x41615252);
        BinaryPrimitives.WriteUInt32LittleEndian(fsinfo.AsSpan(484), 0x61417272);
        long dataClusters = (PartitionSectors - FirstDataSector) / SectorsPerCluster;
        BinaryPrimitives.WriteUInt32LittleEndian(fsinfo.AsSpan(488), (uint)(dataClusters - usedClusters));
        BinaryPrimitives.WriteUInt32LittleEndian(fsinfo.AsSpan(492), (uint)(usedClusters + 2));
        BinaryPrimitives.WriteUInt32LittleEndian(fsinfo.AsSpan(508), 0xaa550000);
        return fsinfo;
    }
}
