using System.Buffers.Binary;

namespace Block.Fuzz.Targets;

/// <summary>
/// An image file encoded as its non-zero sectors, for formats whose smallest files are megabytes of mostly zeroes
/// (vhdx: 1 MiB-aligned regions, so a qemu-img image is at least 8 MiB): a fuzzer mutating the whole file would spend
/// its time on zeroes, and the smoke test would copy megabytes per input.
/// </summary>
/// <remarks>
/// The input is a little-endian <c>u32</c> file length in 512-byte sectors, then runs of <c>u32</c> first sector,
/// <c>u16</c> sector count and the sectors' bytes (the last run may be short). Lengths and runs past 64 MiB are cut
/// there, so no input makes a larger file. <c>fuzz/make-vhdx-corpus.sh</c> encodes files made by qemu-img.
/// </remarks>
public static class SparseImageInput
{
    /// <summary>The largest file an input may describe.</summary>
    public const long MaxFileBytes = 64L << 20;

    /// <summary>Writes the file <paramref name="input"/> describes to <paramref name="path"/>.</summary>
    public static void WriteTo(string path, ReadOnlySpan<byte> input)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        if (input.Length < 4)
            return;
        long length = Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(input) * 512L, MaxFileBytes);
        file.SetLength(length);
        input = input[4..];
        while (input.Length >= 6)
        {
            long at = BinaryPrimitives.ReadUInt32LittleEndian(input) * 512L;
            int count = BinaryPrimitives.ReadUInt16LittleEndian(input[4..]) * 512;
            input = input[6..];
            var data = input[..Math.Min(count, input.Length)];
            input = input[data.Length..];
            if (at >= MaxFileBytes)
                continue;
            data = data[..(int)Math.Min(data.Length, MaxFileBytes - at)];
            file.Position = at;
            file.Write(data);
        }
    }
}
