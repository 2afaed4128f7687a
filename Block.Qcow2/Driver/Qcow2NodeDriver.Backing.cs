using Block.Drivers.Blkdebug;
using System.Text;
using Block.Qcow2.Format;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <inheritdoc />
    /// <remarks>The header cluster is rewritten in one write with the new name (after the extensions) and the backing
    /// format extension; nothing else changes. Null removes the backing file; an empty name is written as QEMU's
    /// <c>change-backing-file</c> writes it, and reads as no backing file.</remarks>
    public override async ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat)
    {
        if (backingFile != null && Encoding.UTF8.GetByteCount(backingFile) > Qcow2Header.MaxBackingNameLength)
            throw new BlockException(Errno.EINVAL, "Backing file name too long");
        if (backingFile is null && backingFormat != null)
            throw new BlockException(Errno.EINVAL, "Cannot set a backing format without a backing file");
        if (_hasDataFile && IsDataFileRaw && backingFile != null)
            throw new BlockException(Errno.EINVAL, "Cannot use a backing file with a raw external data file");
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ThrowIfCorrupt();
            string? oldFile = _header.BackingFile, oldFormat = _header.BackingFormat;
            // An empty name is recorded as QEMU records it (an offset, length 0, and the format extension): no backing
            // file to open, but not the same header as none at all.
            _header.BackingFile = backingFile;
            _header.BackingFormat = backingFile is null ? null : backingFormat;
            try
            {
                await WriteHeaderAsync().ConfigureAwait(false);
            }
            catch
            {
                _header.BackingFile = oldFile;
                _header.BackingFormat = oldFormat;
                throw;
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    public override bool CanMakeEmpty => true;

    /// <inheritdoc />
    /// <remarks>Every cluster is deallocated (its L2 entry cleared) and freed; the freed clusters are discarded in the
    /// file as snapshot discards are, so the file shrinks where the filesystem allows.</remarks>
    public override async ValueTask MakeEmptyAsync()
    {
        await _file.DebugEventAsync(BlkdebugEvent.EmptyImagePrepare).ConfigureAwait(false);
        for (long pos = 0; pos < _size;)
        {
            long end = Math.Min(_size, pos + ToSliceEnd(pos));
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                ThrowIfCorrupt();
                if (SliceOffset(_l1, pos, out _) != 0)
                    await ChangeSliceAsync(pos, end, ClusterChange.Deallocate).ConfigureAwait(false);
            }
            finally
            {
                _lock.Release();
            }
            pos = end;
        }
        await FlushToOsAsync().ConfigureAwait(false);
    }
}
