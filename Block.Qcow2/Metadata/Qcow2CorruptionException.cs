namespace Block.Qcow2.Metadata;

/// <summary>
/// The image's metadata is inconsistent in a way that makes going on dangerous: the driver marks the image corrupt,
/// raises <c>BLOCK_IMAGE_CORRUPTED</c> and fails the request with EIO.
/// </summary>
public sealed class Qcow2CorruptionException : ImageFormatException
{
    /// <summary>Creates the exception for the host range <paramref name="offset"/>..+<paramref name="size"/>.</summary>
    public Qcow2CorruptionException(string message, long? offset = null, long? size = null)
        : base(message, Errno.EIO)
    {
        Offset = offset;
        Size = size;
    }

    /// <summary>Host offset of the problem, when known.</summary>
    public long? Offset { get; }

    /// <summary>Size of the affected range, when known.</summary>
    public long? Size { get; }
}
