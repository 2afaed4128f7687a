using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Nfs.Driver;

/// <summary>
/// One open <c>nfs</c> node: an open file on a mounted export, every request a libnfs call on the mount's
/// event-loop thread (<see cref="NfsMount"/>).
/// </summary>
internal sealed class NfsNodeDriver : NodeDriver
{
    private readonly NfsMount _mount;
    private readonly nint _file;
    private readonly string _filename;
    private readonly bool _regularFile;
    private long _length;

    public NfsNodeDriver(BlockNode node, NfsMount mount, nint file, long length, bool regularFile, string filename)
        : base(node)
    {
        _mount = mount;
        _file = file;
        _length = length;
        _regularFile = regularFile;
        _filename = filename;
    }

    public override long Length => Volatile.Read(ref _length);

    public override string Filename => _filename;

    /// <remarks>libnfs splits a larger request into RPCs itself; cutting at the server's maximum lets the request path
    /// issue the pieces in parallel, each one RPC.</remarks>
    public override BlockLimits Limits => new() { MaxTransfer = _mount.MaxTransfer };

    /// <remarks>QEMU's nfs driver has no <c>bdrv_get_info</c>.</remarks>
    public override bool HasDriverInfo => false;

    /// <summary>As QEMU: a newly created regular file reads as zeroes.</summary>
    public override bool HasZeroInit => _regularFile;

    /// <summary>The file's blocks on the server (<c>st_blocks</c> × 512), asked for each time, as QEMU does.</summary>
    public override long? AllocatedSize
    {
        get
        {
            try
            {
                var stat = _mount.StatAsync(_file).GetAwaiter().GetResult();
                return checked((long)stat.Blocks * 512);
            }
            catch (Exception e) when (e is BlockException or OverflowException)
            {
                return null;
            }
        }
    }

    /// <summary>
    /// QEMU's answer for a protocol driver without block status: all data, allocated, at the same offset in this node
    /// (so <c>map</c> shows the offsets).
    /// </summary>
    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero) =>
        new(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated | BlockStatusFlags.OffsetValid, length, offset, Node));

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (buffers.Length == 0)
            return default;
        var pending = _mount.ReadAsync(_file, offset, buffers);
        if (pending.IsCompletedSuccessfully)
        {
            int got = pending.Result;
            if (got < buffers.Length)
                buffers.Slice(got).Clear();
            return default;
        }
        return AwaitRead(pending, buffers);
    }

    /// <summary>Bytes the server did not return (past its end of file) read as zeroes, as in QEMU.</summary>
    private static async ValueTask AwaitRead(ValueTask<int> pending, IoVector buffers)
    {
        int got = await pending.ConfigureAwait(false);
        if (got < buffers.Length)
            buffers.Slice(got).Clear();
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (buffers.Length == 0)
            return default;
        return AwaitWrite(_mount.WriteAsync(_file, offset, buffers), offset, buffers.Length);
    }

    /// <summary>A short write is an I/O error, as in QEMU; a write past the end grows the file (a format allocating there).</summary>
    private async ValueTask AwaitWrite(ValueTask<int> pending, long offset, int length)
    {
        int written = await pending.ConfigureAwait(false);
        if (written != length)
            throw new BlockException(Errno.EIO, $"NFS Error: short write ({written} of {length} bytes)");
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

    /// <summary>NFS COMMIT through <c>nfs_fsync</c>: writes are sent UNSTABLE, and reach the server's disk here.</summary>
    public override async ValueTask FlushToDiskAsync() =>
        await _mount.RunAsync(Nfs.Driver.NfsOperation.Fsync, _file).ConfigureAwait(false);

    /// <summary>QEMU's truncate: <c>nfs_ftruncate</c> to the new length, which may grow or shrink; no preallocation.</summary>
    public override async ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact)
    {
        if (preallocation != PreallocMode.Off)
            throw new BlockException(Errno.ENOTSUP, $"Unsupported preallocation mode '{preallocation.ToString().ToLowerInvariant()}'");
        try
        {
            await _mount.RunAsync(NfsOperation.Truncate, _file, length).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            throw new BlockException(e.Errno, $"Failed to truncate file: {e.Message}");
        }
        Volatile.Write(ref _length, length);
    }

    public override async ValueTask DisposeAsync()
    {
        try
        {
            await _mount.RunAsync(NfsOperation.Close, _file).ConfigureAwait(false);
            await _mount.RunAsync(NfsOperation.Umount, 0).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            // A server that is gone cannot be told; the context is destroyed either way.
        }
        _mount.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
