using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Formats.Compression;
using Block.Graph;
using Block.Io;

namespace Block.Formats.Cloop;

/// <summary>
/// One open cloop image, read-only: the offsets table in memory, and the last block read kept decompressed, as QEMU
/// keeps it.
/// </summary>
/// <remarks>
/// Every block is one zlib stream, so a read of 4 KiB inside a 64 KiB block costs a whole block's inflation; keeping
/// the last block means a sequential reader inflates each block once (16 times fewer inflations for 4 KiB reads of
/// 64 KiB blocks). The cache is one block behind one lock, as in QEMU: compressed images are read mostly in order.
/// </remarks>
internal sealed class CloopNodeDriver : NodeDriver
{
    private readonly BlockNode _file;
    private readonly CloopHeader _header;
    private readonly CloopOffsets _offsets;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private byte[]? _block;
    private long _cachedBlock = -1;

    public CloopNodeDriver(BlockNode node, BlockNode file, CloopHeader header, CloopOffsets offsets)
        : base(node)
    {
        _file = file;
        _header = header;
        _offsets = offsets;
    }

    public override BlockLimits Limits => new() { RequestAlignment = 512 };

    public override long Length => _header.DiskSize;

    /// <remarks>QEMU's cloop driver has no driver information: <c>qemu-img info</c> shows no dirty flag.</remarks>
    public override bool HasDriverInfo => false;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        uint blockSize = _header.BlockSize;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            int done = 0;
            while (done < buffers.Length)
            {
                long at = offset + done;
                long block = at / blockSize;
                int inBlock = (int)(at - block * blockSize);
                int n = (int)Math.Min(buffers.Length - done, blockSize - inBlock);
                if (block != _cachedBlock)
                    await LoadAsync(block).ConfigureAwait(false);
                buffers.Slice(done, n).CopyFrom(_block.AsSpan(inBlock, n));
                done += n;
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Inflates block <paramref name="block"/> into the cache; EIO (the cache emptied) if it is not a valid block.</summary>
    private async ValueTask LoadAsync(long block)
    {
        _cachedBlock = -1;
        _block ??= new byte[_header.BlockSize];
        ulong start = _offsets[block], size = _offsets[block + 1] - start;
        // What lies past the end of the file reads as zeroes, as in QEMU; only the part inside the file is read.
        ulong fileLength = (ulong)_file.Length;
        int stored = start >= fileLength ? 0 : (int)Math.Min(size, fileLength - start);
        var compressed = Node.Graph.Buffers.Rent(Math.Max(stored, 1));
        try
        {
            if (stored > 0)
                await _file.ReadAsync((long)start, compressed.Memory[..stored]).ConfigureAwait(false);
            if (!Zlib.TryInflateExactly(compressed.Span[..stored], (long)size - stored, _block))
                ThrowCorruptBlock(block, start, size);
        }
        finally
        {
            compressed.Return(clear: false);
        }
        _cachedBlock = block;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowCorruptBlock(long block, ulong start, ulong size) =>
        throw new BlockException(Errno.EIO,
            $"cloop image '{_file.Filename}': block {block} ({size} bytes at offset {start}) is not a zlib stream of {_header.BlockSize} bytes");

    public override async ValueTask DisposeAsync()
    {
        _lock.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
