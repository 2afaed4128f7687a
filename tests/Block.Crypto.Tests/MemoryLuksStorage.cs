using Block.Crypto.Luks;

namespace Block.Crypto.Tests;

/// <summary>A LUKS area in memory, counting writes, for tests of the LUKS layer without files.</summary>
internal sealed class MemoryLuksStorage : ILuksStorage
{
    public byte[] Bytes { get; private set; } = [];

    public int Writes { get; private set; }

    public long Length => Bytes.Length;

    public ValueTask InitializeAsync(long length, CancellationToken cancellationToken)
    {
        Bytes = new byte[length];
        return default;
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        Bytes.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
        return default;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        Writes++;
        data.Span.CopyTo(Bytes.AsSpan((int)offset));
        return default;
    }

    public MemoryLuksStorage Clone() => new() { Bytes = Bytes.ToArray() };
}
