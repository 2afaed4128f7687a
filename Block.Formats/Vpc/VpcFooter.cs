using System.Buffers.Binary;
using System.Globalization;

namespace Block.Formats.Vpc;

/// <summary>
/// The VHD footer ("hard disk footer"): the 512 big-endian bytes at the end of every VHD, copied at offset 0 of
/// dynamic ones. Parsed from a span, its checksum verified, and written back by one method.
/// </summary>
/// <param name="DataOffset">Where the dynamic header is; all ones in fixed images.</param>
/// <param name="CreatorApp">The four-byte creator application tag (<c>qemu</c>, <c>win </c>, <c>vpc </c>…).</param>
/// <param name="CurrentSize">The disk size the footer states, in bytes.</param>
/// <param name="Geometry">The recorded CHS geometry.</param>
/// <param name="DiskType">2 fixed, 3 dynamic, 4 differencing (QEMU reads 4 as 3 without a parent).</param>
internal readonly record struct VpcFooter(ulong DataOffset, uint CreatorApp, ulong CurrentSize, VpcGeometry Geometry, uint DiskType)
{
    /// <summary>The footer's size.</summary>
    public const int Size = 512;

    /// <summary>Disk type of fixed images.</summary>
    public const uint TypeFixed = 2;

    /// <summary>Disk type of dynamic images.</summary>
    public const uint TypeDynamic = 3;

    /// <summary>The most sectors QEMU opens or creates: 2040 GiB.</summary>
    public const long MaxSectors = 0xff00_0000;

    /// <summary>The creator tag qemu-img writes (CHS size rules apply on open).</summary>
    public const uint CreatorQemu = 0x7165_6d75;

    /// <summary>The creator tag qemu-img writes with <c>force_size=on</c> (the footer's size applies on open).</summary>
    public const uint CreatorQemuForceSize = 0x7165_6d32;

    private const ulong Cookie = 0x636f_6e65_6374_6978; // "conectix"
    private const int FeaturesAt = 8, VersionAt = 12, DataOffsetAt = 16, TimestampAt = 24, CreatorAppAt = 28;
    private const int CreatorVersionAt = 32, CreatorOsAt = 36, OriginalSizeAt = 40, CurrentSizeAt = 48;
    private const int CylindersAt = 56, HeadsAt = 58, SectorsAt = 59, DiskTypeAt = 60, ChecksumAt = 64;

    /// <summary>Where the image's random UUID is (16 bytes).</summary>
    public const int UuidAt = 68;

    /// <summary>Where the timestamp is (4 bytes), for tests that compare images but for it.</summary>
    public const int TimestampOffset = TimestampAt;

    /// <summary>Where the checksum is (4 bytes).</summary>
    public const int ChecksumOffset = ChecksumAt;

    /// <summary>Seconds from the Unix epoch to the VHD epoch, 2000-01-01 00:00:00 UTC.</summary>
    private const long VhdEpoch = 946_684_800;

    /// <summary>True if <paramref name="sector"/> starts with the footer cookie <c>conectix</c>.</summary>
    public static bool HasCookie(ReadOnlySpan<byte> sector) =>
        sector.Length >= 8 && BinaryPrimitives.ReadUInt64BigEndian(sector) == Cookie;

    /// <summary>
    /// Parses a footer whose cookie has been found, refusing a wrong checksum as QEMU does (it names the footer "header").
    /// </summary>
    /// <exception cref="ImageFormatException">The checksum does not match.</exception>
    public static VpcFooter Parse(ReadOnlySpan<byte> sector)
    {
        if (BinaryPrimitives.ReadUInt32BigEndian(sector[ChecksumAt..]) != Checksum(sector, ChecksumAt))
            throw new ImageFormatException("Incorrect header checksum");
        return new(
            BinaryPrimitives.ReadUInt64BigEndian(sector[DataOffsetAt..]),
            BinaryPrimitives.ReadUInt32BigEndian(sector[CreatorAppAt..]),
            BinaryPrimitives.ReadUInt64BigEndian(sector[CurrentSizeAt..]),
            new VpcGeometry(BinaryPrimitives.ReadUInt16BigEndian(sector[CylindersAt..]), sector[HeadsAt], sector[SectorsAt]),
            BinaryPrimitives.ReadUInt32BigEndian(sector[DiskTypeAt..]));
    }

    /// <summary>
    /// The disk size in sectors as QEMU derives it: by <paramref name="rule"/>; by default C·H·S, as Virtual PC reads
    /// it, unless the creator is one that sizes disks by the footer (Hyper-V <c>win </c>, <c>qem2</c>, Disk2VHD
    /// <c>d2v </c>, XenConverter <c>CTXS</c>, XenServer <c>tap\0</c>); and always the footer's size when the geometry is
    /// the maximum one, which cannot say more.
    /// </summary>
    public long VirtualSectors(VpcSizeRule rule)
    {
        bool bySize = rule switch
        {
            VpcSizeRule.Chs => false,
            VpcSizeRule.CurrentSize => true,
            _ => CreatorApp is 0x7769_6e20 or CreatorQemuForceSize or 0x6432_7620 or 0x4354_5853 or 0x7461_7000,
        };
        return bySize || Geometry.IsMax ? (long)(CurrentSize / 512) : Geometry.Sectors;
    }

    /// <summary>
    /// Writes a new footer as qemu-img create does: creator version 5.3 on <c>Wi2k</c>, both sizes equal, the current
    /// time and a fresh random UUID, and the checksum over all of it.
    /// </summary>
    public void WriteNew(Span<byte> sector)
    {
        sector[..Size].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(sector, Cookie);
        BinaryPrimitives.WriteUInt32BigEndian(sector[FeaturesAt..], 2);
        BinaryPrimitives.WriteUInt32BigEndian(sector[VersionAt..], 0x0001_0000);
        BinaryPrimitives.WriteUInt64BigEndian(sector[DataOffsetAt..], DataOffset);
        BinaryPrimitives.WriteUInt32BigEndian(sector[TimestampAt..], (uint)(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - VhdEpoch));
        BinaryPrimitives.WriteUInt32BigEndian(sector[CreatorAppAt..], CreatorApp);
        BinaryPrimitives.WriteUInt32BigEndian(sector[CreatorVersionAt..], 0x0005_0003);
        BinaryPrimitives.WriteUInt32BigEndian(sector[CreatorOsAt..], 0x5769_326b); // "Wi2k"
        BinaryPrimitives.WriteUInt64BigEndian(sector[OriginalSizeAt..], CurrentSize);
        BinaryPrimitives.WriteUInt64BigEndian(sector[CurrentSizeAt..], CurrentSize);
        BinaryPrimitives.WriteUInt16BigEndian(sector[CylindersAt..], Geometry.Cylinders);
        sector[HeadsAt] = Geometry.Heads;
        sector[SectorsAt] = Geometry.SectorsPerTrack;
        BinaryPrimitives.WriteUInt32BigEndian(sector[DiskTypeAt..], DiskType);
        Guid.NewGuid().TryWriteBytes(sector.Slice(UuidAt, 16), bigEndian: true, out _);
        BinaryPrimitives.WriteUInt32BigEndian(sector[ChecksumAt..], Checksum(sector, ChecksumAt));
    }

    /// <summary>
    /// The VHD checksum of <paramref name="structure"/>: the one's complement of the sum of its bytes, the four at
    /// <paramref name="checksumAt"/> counted as zero.
    /// </summary>
    public static uint Checksum(ReadOnlySpan<byte> structure, int checksumAt)
    {
        uint sum = 0;
        for (int i = 0; i < structure.Length; i++)
        {
            if (i < checksumAt || i >= checksumAt + 4)
                sum += structure[i];
        }
        return ~sum;
    }

    /// <summary>The message of an image QEMU cannot identify as VHD.</summary>
    public static ImageFormatException Invalid() => new("invalid VPC image");

    /// <summary>The message QEMU gives for a disk of more than 2040 GiB, with the file's name.</summary>
    public static ImageFormatException TooLarge(string filename) =>
        new(string.Create(CultureInfo.InvariantCulture, $"Could not open '{filename}': File too large"), Errno.EFBIG);
}
