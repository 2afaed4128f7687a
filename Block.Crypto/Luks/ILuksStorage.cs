namespace Block.Crypto.Luks;

/// <summary>
/// Where a LUKS header and its key material live: a byte range that <see cref="LuksVolume"/> reads and writes with
/// offsets from the range's start. A raw LUKS image's range is its file from byte 0; qcow2's is the clusters its
/// full-disk-encryption header extension points to.
/// </summary>
/// <remarks>
/// The payload (the encrypted guest data) is not accessed through this interface: the format reads and writes it
/// itself and encrypts it with <see cref="LuksVolume.Cipher"/>.
/// </remarks>
public interface ILuksStorage
{
    /// <summary>The range's length in bytes; every offset the header names is checked against it.</summary>
    long Length { get; }

    /// <summary>Creation only: called once, before any write, with the bytes the header and key material need (the payload offset).</summary>
    /// <remarks>qcow2 allocates its encryption clusters here; a raw LUKS file needs nothing.</remarks>
    ValueTask InitializeAsync(long length, CancellationToken cancellationToken);

    /// <summary>Reads <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>.</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken);
}
