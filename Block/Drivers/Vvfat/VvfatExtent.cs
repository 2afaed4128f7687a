namespace Block.Drivers.Vvfat;

/// <summary>A range of the disk that holds something other than zeroes: bytes in memory, or a host file's clusters.</summary>
internal sealed class VvfatExtent
{
    private VvfatExtent(long offset, long length, byte[]? bytes, HostEntry? file, long fileOffset)
    {
        Offset = offset;
        Length = length;
        Bytes = bytes;
        File = file;
        FileOffset = fileOffset;
    }

    /// <summary>Where it starts in the disk.</summary>
    public long Offset { get; }

    /// <summary>Its length in bytes.</summary>
    public long Length { get; }

    /// <summary>Its bytes, for metadata; null for a file.</summary>
    public byte[]? Bytes { get; }

    /// <summary>The host file whose clusters these are (bytes past its end read as zeroes); null for metadata.</summary>
    public HostEntry? File { get; }

    /// <summary>Where in <see cref="File"/> the extent's first byte is (0 but for a file written in several runs of
    /// clusters by a guest).</summary>
    public long FileOffset { get; }

    /// <summary>The end offset.</summary>
    public long End => Offset + Length;

    /// <summary>Bytes held in memory.</summary>
    public static VvfatExtent Memory(long offset, byte[] bytes) => new(offset, bytes.Length, bytes, null, 0);

    /// <summary>The clusters of a host file, from <paramref name="fileOffset"/> in it.</summary>
    public static VvfatExtent HostFile(long offset, long length, HostEntry file, long fileOffset = 0) => new(offset, length, null, file, fileOffset);
}
