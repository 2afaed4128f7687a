using System.Runtime.InteropServices;
using Block.Drivers;
using Block.Gluster.Interop;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Gluster.Driver;

/// <summary>
/// One open <c>gluster</c> node: an open gfapi fd on its own connection (<see cref="GlusterConnection"/>), reads,
/// writes, flushes, discards and write-zeroes through gfapi's async calls.
/// </summary>
internal sealed class GlusterNodeDriver : NodeDriver
{
    private const int SeekData = 3, SeekHole = 4;

    private readonly GlusterConnection _connection;
    private readonly nint _fd;
    private readonly string _filename;
    private long _length;
    private bool _seekDataSupported = true;

    public GlusterNodeDriver(BlockNode node, GlusterConnection connection, nint fd, long length, string filename)
        : base(node)
    {
        _connection = connection;
        _fd = fd;
        _length = length;
        _filename = filename;
    }

    public override long Length => Volatile.Read(ref _length);

    public override string Filename => _filename;

    /// <summary>Requests in whole 512-byte sectors, as QEMU's gluster nodes send them.</summary>
    /// <remarks>
    /// Measured: qemu-img 7.2 over gluster writes a new qcow2's 8-byte L1 table as a 512-byte sector, so the file ends at
    /// 197120 bytes, not 196616 as on a local file; with the same alignment our files are byte for byte the same.
    /// </remarks>
    public override BlockLimits Limits => new() { RequestAlignment = 512 };

    /// <remarks>QEMU's gluster driver has no <c>bdrv_get_info</c>.</remarks>
    public override bool HasDriverInfo => false;

    /// <summary>As QEMU: a volume may sit on a block device, so a new file is not known to read as zeroes.</summary>
    public override bool HasZeroInit => false;

    /// <summary>The file's blocks on the bricks (<c>st_blocks</c> × 512 from <c>glfs_fstat</c>), asked for each time.</summary>
    public override long? AllocatedSize
    {
        get
        {
            try
            {
                return _connection.RunAsync(() => Stat(_fd).Blocks * 512, "a stat").GetAwaiter().GetResult();
            }
            catch (BlockException)
            {
                return null;
            }
        }
    }

    /// <summary><c>glfs_fstat</c>: the file's size, blocks and mode.</summary>
    internal static unsafe (long Size, long Blocks, uint Mode) Stat(nint fd)
    {
        byte* stat = stackalloc byte[LibGfapi.StatBuffer.Size];
        if (LibGfapi.Fstat(fd, stat) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new BlockException(GlusterConnection.ErrnoOf(errno), Marshal.GetPInvokeErrorMessage(errno));
        }
        return (LibGfapi.StatBuffer.FileSize(stat), LibGfapi.StatBuffer.Blocks(stat), LibGfapi.StatBuffer.Mode(stat));
    }

    /// <summary>
    /// Holes and data through <c>glfs_lseek</c> with <c>SEEK_DATA</c>/<c>SEEK_HOLE</c>, as QEMU's gluster driver: a
    /// hole reads as zeroes; a volume that does not know the two (EINVAL, ENOTSUP) reports all data from then on.
    /// </summary>
    public override async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        const BlockStatusFlags data = BlockStatusFlags.Data | BlockStatusFlags.OffsetValid | BlockStatusFlags.Allocated;
        const BlockStatusFlags hole = BlockStatusFlags.Zero | BlockStatusFlags.OffsetValid | BlockStatusFlags.Allocated;
        if (!wantZero || !_seekDataSupported)
            return new BlockStatus(data, length, offset, Node);
        var (dataStart, dataErrno) = await _connection.RunAsync(() => Seek(offset, SeekData), "a seek").ConfigureAwait(false);
        if (dataStart < 0)
        {
            if (dataErrno == (int)Errno.ENXIO)
                return new BlockStatus(hole, length, offset, Node);
            if (dataErrno is (int)Errno.EINVAL or (int)Errno.ENOTSUP)
                _seekDataSupported = false;
            return new BlockStatus(data, length, offset, Node);
        }
        if (dataStart > offset)
            return new BlockStatus(hole, Math.Min(length, dataStart - offset), offset, Node);
        var (holeStart, _) = await _connection.RunAsync(() => Seek(offset, SeekHole), "a seek").ConfigureAwait(false);
        if (holeStart <= offset)
            return new BlockStatus(data, length, offset, Node);
        return new BlockStatus(data, Math.Min(length, holeStart - offset), offset, Node);
    }

    private (long Offset, int Errno) Seek(long offset, int whence)
    {
        long result = LibGfapi.Lseek(_fd, offset, whence);
        return (result, result < 0 ? Marshal.GetLastPInvokeError() : 0);
    }

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (buffers.Length == 0)
            return default;
        var pending = _connection.StartAsync(GlusterOperation.Read, _fd, offset, buffers);
        if (pending.IsCompletedSuccessfully)
        {
            ZeroTail(buffers, pending.Result);
            return default;
        }
        return AwaitRead(pending, buffers);
    }

    private static async ValueTask AwaitRead(ValueTask<long> pending, IoVector buffers) =>
        ZeroTail(buffers, await pending.ConfigureAwait(false));

    /// <summary>Bytes past the file's end (a short read) read as zeroes.</summary>
    private static void ZeroTail(IoVector buffers, long got)
    {
        if (got < buffers.Length)
            buffers.Slice((int)got).Clear();
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (buffers.Length == 0)
            return default;
        return AwaitWrite(_connection.StartAsync(GlusterOperation.Write, _fd, offset, buffers), offset, buffers.Length);
    }

    /// <summary>A short write is an I/O error, as in QEMU; a write past the end grows the file (a format allocating there).</summary>
    private async ValueTask AwaitWrite(ValueTask<long> pending, long offset, int length)
    {
        long written = await pending.ConfigureAwait(false);
        if (written != length)
            throw new BlockException(Errno.EIO, $"gluster: short write ({written} of {length} bytes)");
        GrowTo(offset + length);
    }

    private void GrowTo(long end)
    {
        long current = Volatile.Read(ref _length);
        while (end > current)
        {
            long seen = Interlocked.CompareExchange(ref _length, end, current);
            if (seen == current)
                return;
            current = seen;
        }
    }

    /// <summary><c>glfs_zerofill_async</c>: the bricks write the zeroes, no data crosses the network.</summary>
    public override async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        if (length == 0)
            return;
        await _connection.StartAsync(GlusterOperation.Zerofill, _fd, offset, length).ConfigureAwait(false);
        GrowTo(offset + length);
    }

    /// <summary><c>glfs_discard_async</c>: the bricks punch a hole.</summary>
    public override async ValueTask DiscardAsync(long offset, long length)
    {
        long end = Math.Min(offset + length, Length);
        if (end <= offset)
            return;
        await _connection.StartAsync(GlusterOperation.Discard, _fd, offset, end - offset).ConfigureAwait(false);
    }

    /// <summary><c>glfs_fsync_async</c>: gfapi's write-behind sends what it holds, and the bricks sync it.</summary>
    public override async ValueTask FlushToDiskAsync() =>
        await _connection.StartAsync(GlusterOperation.Fsync, _fd, 0, 0).ConfigureAwait(false);

    /// <summary>QEMU's truncate: <c>off</c>, <c>falloc</c> or <c>full</c> (see <see cref="Resize"/>).</summary>
    public override async ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact)
    {
        long current = Length;
        await _connection.RunAsync(() => { Resize(_fd, current, length, preallocation); return 0; }, "a truncate").ConfigureAwait(false);
        Volatile.Write(ref _length, length);
    }

    /// <summary>
    /// Resizes the open file from <paramref name="current"/> to <paramref name="length"/> bytes with QEMU's
    /// preallocation modes: <c>off</c> is <c>glfs_ftruncate</c>; <c>falloc</c> is <c>glfs_fallocate</c> of the new
    /// area; <c>full</c> is <c>glfs_ftruncate</c> then <c>glfs_zerofill</c> of the new area. A blocking call.
    /// </summary>
    internal static void Resize(nint fd, long current, long length, PreallocMode preallocation)
    {
        if (preallocation is PreallocMode.Falloc or PreallocMode.Full && length < current)
            throw new BlockException(Errno.EINVAL, "Cannot use preallocation for shrinking files");
        switch (preallocation)
        {
            case PreallocMode.Off:
                Check(LibGfapi.Ftruncate(fd, length, 0, 0), "Could not resize file");
                break;
            case PreallocMode.Falloc:
                if (length > current)
                    Check(LibGfapi.Fallocate(fd, 0, current, (nuint)(length - current)), "Could not preallocate data for the new area");
                break;
            case PreallocMode.Full:
                Check(LibGfapi.Ftruncate(fd, length, 0, 0), "Could not resize file");
                if (length > current)
                    Check(LibGfapi.Zerofill(fd, current, length - current), "Could not zerofill the new area");
                break;
            default:
                throw new BlockException(Errno.EINVAL, $"Unsupported preallocation mode: {QapiEnum<PreallocMode>.ToWire(preallocation)}");
        }
    }

    private static void Check(int rc, string what)
    {
        if (rc == 0)
            return;
        int errno = Marshal.GetLastPInvokeError();
        throw new BlockException(GlusterConnection.ErrnoOf(errno), $"{what}: {Marshal.GetPInvokeErrorMessage(errno)}");
    }

    /// <summary>Closes the fd (which sends what write-behind holds), then finalises the connection in the background.</summary>
    public override async ValueTask DisposeAsync()
    {
        try
        {
            await _connection.RunAsync(() => LibGfapi.Close(_fd), "a close").ConfigureAwait(false);
        }
        catch (BlockException)
        {
            // A volume that is gone cannot be told; the instance is finalised either way.
        }
        _connection.Close();
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
