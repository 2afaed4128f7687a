using System.Runtime.CompilerServices;
using Block.Io;

namespace Block.Formats;

/// <summary>A format whose guest data lies in power-of-two blocks, each of which can be read on its own.</summary>
internal interface IBlockReader
{
    /// <summary>Reads <paramref name="buffers"/>, which lie wholly inside block <paramref name="block"/>, from <paramref name="inBlock"/> bytes into it.</summary>
    ValueTask ReadInBlockAsync(long block, long inBlock, IoVector buffers);
}

/// <summary>The slow path every block format shares: a read that crosses block boundaries, one block at a time.</summary>
/// <remarks>
/// Each driver keeps its own fast path (a read inside one block goes straight to its table lookup, with no interface
/// call); only requests that span blocks come here.
/// </remarks>
internal static class BlockSpans
{
    /// <summary>Reads <paramref name="buffers"/> at <paramref name="offset"/> through <paramref name="reader"/>, split at every block boundary.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public static async ValueTask ReadAsync<TReader>(TReader reader, int blockShift, long offset, IoVector buffers)
        where TReader : IBlockReader
    {
        long blockSize = 1L << blockShift;
        int done = 0;
        while (done < buffers.Length)
        {
            long at = offset + done;
            long inBlock = at & (blockSize - 1);
            int n = (int)Math.Min(buffers.Length - done, blockSize - inBlock);
            await reader.ReadInBlockAsync(at >> blockShift, inBlock, buffers.Slice(done, n)).ConfigureAwait(false);
            done += n;
        }
    }
}
