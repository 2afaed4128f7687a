namespace Block.Drivers.Blkverify;

/// <summary>
/// A <c>blkverify</c> node found its test image and its raw copy disagreeing: different data for a read, or one of
/// the two failing a request the other served. The message is QEMU 7.2's, naming the request and the first byte that
/// differs (<c>blkverify: read offset=4096 bytes=8192 contents mismatch at offset 8192</c>).
/// </summary>
/// <remarks>
/// QEMU ends the process here: blkverify exists to catch a format driver's bugs, and nothing after a wrong read can be
/// trusted. A library must not end its host, so the request fails with this exception instead. It is deliberately not
/// a <see cref="BlockException"/>: error policies, retries and tools that report a <see cref="BlockException"/> and go
/// on do not swallow it, and <c>blk</c> stops on it with QEMU's message and exit code 1.
/// </remarks>
public sealed class BlkverifyMismatchException : IOException
{
    /// <summary>A mismatch described by <paramref name="message"/>.</summary>
    public BlkverifyMismatchException(string message)
        : base(message)
    {
    }

    /// <summary>A mismatch with no description.</summary>
    public BlkverifyMismatchException()
    {
    }

    /// <summary>A mismatch described by <paramref name="message"/>, caused by <paramref name="innerException"/>.</summary>
    public BlkverifyMismatchException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
