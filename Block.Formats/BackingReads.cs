using Block.Graph;
using Block.Io;

namespace Block.Formats;

/// <summary>Reads of a format's backing node, which may be shorter than the image over it (qed, qcow).</summary>
internal static class BackingReads
{
    /// <summary>Reads from <paramref name="backing"/>, with zeroes past its end.</summary>
    public static ValueTask ReadAsync(BlockNode backing, long offset, IoVector buffers)
    {
        long available = backing.Length - offset;
        if (available >= buffers.Length)
            return backing.ReadAsync(offset, buffers);
        if (available <= 0)
        {
            buffers.Clear();
            return default;
        }
        buffers.Slice((int)available).Clear();
        return backing.ReadAsync(offset, buffers.Slice(0, (int)available));
    }
}
