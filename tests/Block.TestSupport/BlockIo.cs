using Block.Graph;

namespace Block.TestSupport;

/// <summary>Synchronous reads and writes through a backend, for tests that check bytes.</summary>
public static class BlockIo
{
    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="offset"/>.</summary>
    public static byte[] Read(BlockBackend backend, long offset, int length)
    {
        var buffer = new byte[length];
        backend.ReadAsync(offset, buffer).AsTask().GetAwaiter().GetResult();
        return buffer;
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    public static void Write(BlockBackend backend, long offset, byte[] data) =>
        backend.WriteAsync(offset, data).AsTask().GetAwaiter().GetResult();
}
