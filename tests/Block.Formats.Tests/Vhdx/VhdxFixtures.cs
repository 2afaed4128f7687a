using System.Buffers.Binary;
using Block.Formats.Vhdx;

namespace Block.Formats.Tests.Vhdx;

/// <summary>Edits of vhdx files for the tests: a log armed again, fields patched with their checksums fixed.</summary>
internal static class VhdxFixtures
{
    /// <summary>
    /// Sets both headers' LogGuid to that of the newest entry in the log (QEMU leaves its entries there after replaying
    /// them) and sets BAT entry <paramref name="batEntryToClear"/> back to ZERO: the file as a crash after the log entry
    /// and before its in-place write leaves it.
    /// </summary>
    public static void ArmLastLogEntry(string image, int batEntryToClear)
    {
        var bytes = File.ReadAllBytes(image);
        var header = bytes.AsSpan(0x10000, 4096);
        long logOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(header[72..]);
        uint logLength = BinaryPrimitives.ReadUInt32LittleEndian(header[68..]);
        Guid guid = Guid.Empty;
        ulong best = 0;
        for (long p = 0; p < logLength; p += 4096)
        {
            var e = bytes.AsSpan((int)(logOffset + p));
            if (BinaryPrimitives.ReadUInt32LittleEndian(e) == 0x65676f6c && BinaryPrimitives.ReadUInt64LittleEndian(e[16..]) > best)
            {
                best = BinaryPrimitives.ReadUInt64LittleEndian(e[16..]);
                guid = new Guid(e.Slice(32, 16));
            }
        }
        Assert.NotEqual(Guid.Empty, guid);
        foreach (int at in new[] { 0x10000, 0x20000 })
        {
            var h = VhdxHeader.TryParse(bytes.AsSpan(at, 4096))!.Value;
            (h with { LogGuid = guid }).WriteTo(bytes.AsSpan(at, 4096));
        }
        long bat = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(0x30000 + 16 + 16));
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)(bat + batEntryToClear * 8)), 2);
        File.WriteAllBytes(image, bytes);
    }

    /// <summary>Writes <paramref name="value"/> at <paramref name="offset"/>.</summary>
    public static void Patch(string image, long offset, ReadOnlySpan<byte> value)
    {
        using var f = File.OpenWrite(image);
        f.Position = offset;
        f.Write(value);
    }

    /// <summary>Recomputes the checksum of the region table at <paramref name="offset"/>.</summary>
    public static void FixRegionTableChecksum(string image, long offset)
    {
        var bytes = File.ReadAllBytes(image);
        VhdxChecksum.Store(bytes.AsSpan((int)offset, VhdxLayout.RegionTableSize), 4);
        File.WriteAllBytes(image, bytes);
    }
}
