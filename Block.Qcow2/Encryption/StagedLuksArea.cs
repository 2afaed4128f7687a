using Block.Crypto.Luks;

namespace Block.Qcow2.Encryption;

/// <summary>
/// A LUKS area built in memory before the image exists: <c>qemu-img create</c>'s slow and fallible part (PBKDF2
/// calibration, key generation) runs first, so nothing is created when it fails; the bytes then go into the image's
/// clusters in one write.
/// </summary>
internal sealed class StagedLuksArea : ILuksStorage
{
    private byte[] _bytes = [];

    /// <summary>The header and key material, <see cref="Length"/> bytes.</summary>
    public ReadOnlyMemory<byte> Bytes => _bytes;

    /// <inheritdoc />
    public long Length => _bytes.Length;

    /// <inheritdoc />
    /// <remarks>The length is the LUKS layout's payload offset: about 2 MiB for the largest keys.</remarks>
    public ValueTask InitializeAsync(long length, CancellationToken cancellationToken)
    {
        _bytes = new byte[length];
        return default;
    }

    /// <inheritdoc />
    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        _bytes.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
        return default;
    }

    /// <inheritdoc />
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        data.Span.CopyTo(_bytes.AsSpan((int)offset));
        return default;
    }
}
