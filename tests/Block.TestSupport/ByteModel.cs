namespace Block.TestSupport;

/// <summary>A flat byte array that model-based tests keep in step with an image.</summary>
public sealed class ByteModel
{
    private byte[] _bytes;

    /// <summary>A model of <paramref name="length"/> zero bytes.</summary>
    public ByteModel(long length)
    {
        _bytes = new byte[length];
    }

    /// <summary>The current length.</summary>
    public long Length => _bytes.LongLength;

    /// <summary>The bytes.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Applies a write.</summary>
    public void Write(long offset, ReadOnlySpan<byte> data) => data.CopyTo(_bytes.AsSpan((int)offset));

    /// <summary>Applies a write-zeroes or a discard that reads back as zeroes.</summary>
    public void Zero(long offset, long length) => _bytes.AsSpan((int)offset, (int)length).Clear();

    /// <summary>Applies a resize.</summary>
    public void Resize(long length) => Array.Resize(ref _bytes, (int)length);

    /// <summary>The bytes of a range.</summary>
    public ReadOnlySpan<byte> Slice(long offset, int length) => _bytes.AsSpan((int)offset, length);

    /// <summary>The first offset where <paramref name="actual"/> differs from the model at <paramref name="offset"/>, or -1.</summary>
    public long FirstMismatch(long offset, ReadOnlySpan<byte> actual)
    {
        var expected = Slice(offset, actual.Length);
        int i = expected.CommonPrefixLength(actual);
        return i == actual.Length ? -1 : offset + i;
    }
}
