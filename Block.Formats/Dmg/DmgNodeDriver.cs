using System.Globalization;
using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Formats.Compression;
using Block.Graph;
using Block.Io;

namespace Block.Formats.Dmg;

/// <summary>
/// One open dmg image, read-only: its chunk table in memory, and the last compressed chunk read kept decompressed, as
/// QEMU keeps it.
/// </summary>
/// <remarks>
/// A read is served run by run: the sectors of one chunk are copied from the decompressed chunk (zlib, bzip2), read
/// straight from the file (raw: one request for the run, where QEMU copies through its chunk buffer), or cleared
/// (zero, ignore). A sector no chunk covers is an I/O error, as in QEMU. One lock guards the cached chunk: compressed
/// images are read mostly in order, and a chunk decompresses to at most 64 MiB.
/// </remarks>
internal sealed class DmgNodeDriver : NodeDriver
{
    private readonly BlockNode _file;
    private readonly long _sectors;
    private readonly DmgChunkTable _chunks;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private byte[] _chunk = [];
    private int _current = -1;
    private int _decompressed = -1;

    public DmgNodeDriver(BlockNode node, BlockNode file, long sectors, DmgChunkTable chunks)
        : base(node)
    {
        _file = file;
        _sectors = sectors;
        _chunks = chunks;
    }

    public override BlockLimits Limits => new() { RequestAlignment = 512 };

    public override long Length => _sectors * 512;

    /// <remarks>QEMU's dmg driver has no driver information: <c>qemu-img info</c> shows no dirty flag.</remarks>
    public override bool HasDriverInfo => false;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            int done = 0;
            while (done < buffers.Length)
            {
                ulong sector = (ulong)(offset + done) / 512;
                int index = _current >= 0 && _chunks[_current].Contains(sector) ? _current : _chunks.Search(sector);
                _current = -1;
                if (index < 0)
                    ThrowNoChunk(sector);
                var chunk = _chunks[index];
                ulong inChunk = sector - chunk.Sector;
                int n = (int)Math.Min((ulong)(buffers.Length - done) / 512, chunk.SectorCount - inChunk) * 512;
                var part = buffers.Slice(done, n);
                if (chunk.IsZero)
                    part.Clear();
                else if (chunk.Type == DmgChunkType.Raw)
                    await ReadRawAsync(chunk, inChunk * 512, part).ConfigureAwait(false);
                else
                {
                    if (_decompressed != index)
                        await DecompressAsync(index, chunk).ConfigureAwait(false);
                    part.CopyFrom(_chunk.AsSpan((int)(inChunk * 512), n));
                }
                _current = index;
                done += n;
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Reads a run of a raw chunk from the file: the chunk's stored bytes, zeroes past them and past the end of the file.
    /// </summary>
    private async ValueTask ReadRawAsync(DmgChunk chunk, ulong inChunk, IoVector part)
    {
        ulong fileLength = (ulong)_file.Length;
        // A chunk QEMU cannot even request (its end past 2^63) fails there: an I/O error.
        if (chunk.Offset > long.MaxValue - chunk.Length)
            ThrowCorrupt(chunk, "lies past the largest file offset");
        ulong start = chunk.Offset + inChunk;
        ulong stored = inChunk >= chunk.Length ? 0 : Math.Min(chunk.Length - inChunk, (ulong)part.Length);
        if (start >= fileLength)
            stored = 0;
        else
            stored = Math.Min(stored, fileLength - start);
        if (stored > 0)
            await _file.ReadAsync((long)start, part.Slice(0, (int)stored)).ConfigureAwait(false);
        part.Slice((int)stored).Clear();
    }

    /// <summary>Decompresses chunk <paramref name="index"/> into the cache; EIO if it is not a valid stream of its size.</summary>
    private async ValueTask DecompressAsync(int index, DmgChunk chunk)
    {
        _decompressed = -1;
        if (chunk.Offset > long.MaxValue - chunk.Length)
            ThrowCorrupt(chunk, "lies past the largest file offset");
        int length = (int)chunk.Length, size = (int)chunk.SectorCount * 512;
        if (_chunk.Length < size)
            _chunk = new byte[size];
        var compressed = Node.Graph.Buffers.Rent(Math.Max(length, 1));
        try
        {
            await DmgBlkxReader.ReadPaddedAsync(_file, chunk.Offset, compressed.Memory[..length]).ConfigureAwait(false);
            bool ok = chunk.Type == DmgChunkType.Zlib
                ? Zlib.TryInflateExactly(compressed.Span[..length], 0, _chunk.AsSpan(0, size))
                : Bzip2.TryDecompressExactly(compressed.Span[..length], _chunk.AsSpan(0, size));
            if (!ok)
                ThrowCorrupt(chunk, chunk.Type == DmgChunkType.Zlib ? "is not a zlib stream of its size" : "is not a bzip2 stream of its size");
        }
        finally
        {
            compressed.Return(clear: false);
        }
        _decompressed = index;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowNoChunk(ulong sector) =>
        throw new BlockException(Errno.EIO, string.Create(CultureInfo.InvariantCulture,
            $"dmg image '{_file.Filename}': no chunk holds sector {sector}{(_chunks.HasLzfse ? " (the image has lzfse chunks, which this build cannot decompress)" : "")}"));

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowCorrupt(DmgChunk chunk, string what) =>
        throw new BlockException(Errno.EIO, string.Create(CultureInfo.InvariantCulture,
            $"dmg image '{_file.Filename}': the chunk of {chunk.SectorCount} sectors from sector {chunk.Sector} ({chunk.Length} bytes at offset {chunk.Offset}) {what}"));

    public override async ValueTask DisposeAsync()
    {
        _lock.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
