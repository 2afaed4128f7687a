using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;
using Block.Ssh.Sftp;

namespace Block.Ssh.Driver;

/// <summary>
/// One open <c>ssh</c> node: reads and writes go to one SFTP handle on the connection's <see cref="SftpChannel"/>,
/// which keeps many requests in flight; flush sends <c>fsync@openssh.com</c>.
/// </summary>
internal sealed class SshNodeDriver : NodeDriver
{
    private static readonly byte[] s_oneZero = new byte[1];
    private readonly SshConnection _connection;
    private readonly byte[] _handle;
    private readonly string _filename;
    private readonly string _server;
    private long _length;
    private int _flushWarned;

    public SshNodeDriver(BlockNode node, SshConnection connection, byte[] handle, long length, string filename, string server)
        : base(node)
    {
        _connection = connection;
        _handle = handle;
        _length = length;
        _filename = filename;
        _server = server;
    }

    public override long Length => Volatile.Read(ref _length);

    public override string Filename => _filename;

    /// <remarks>QEMU's ssh driver cannot tell the allocated size: <c>qemu-img info</c> says "disk size: unavailable".</remarks>
    public override long? AllocatedSize => null;

    public override bool HasDriverInfo => false;

    /// <remarks>Past the end of the file the channel pads with zeroes, as QEMU's driver does.</remarks>
    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags) =>
        _connection.Channel.ReadAsync(_handle, offset, buffers);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        await _connection.Channel.WriteAsync(_handle, offset, buffers).ConfigureAwait(false);
        GrowTo(offset + buffers.Length);
    }

    /// <remarks>
    /// OpenSSH's <c>fsync@openssh.com</c> makes the server fsync the file. A server without it cannot be asked to:
    /// every write has reached the server when it completes, but not necessarily its disk. QEMU warns once then, and
    /// so do we.
    /// </remarks>
    public override ValueTask FlushToDiskAsync()
    {
        if (_connection.Channel.CanFsync)
            return _connection.Channel.FsyncAsync(_handle);
        if (Interlocked.Exchange(ref _flushWarned, 1) == 0)
            Node.Graph.Warn($"ssh server {_server} does not support fsync");
        return default;
    }

    /// <summary>QEMU's truncate: growing only, by writing one zero byte at the new end; shrinking is refused.</summary>
    public override async ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact)
    {
        if (preallocation != PreallocMode.Off)
            throw new BlockException(Errno.ENOTSUP, $"Unsupported preallocation mode '{preallocation.ToString().ToLowerInvariant()}'");
        long current = Length;
        if (length < current)
            throw new BlockException(Errno.ENOTSUP, "ssh driver does not support shrinking files");
        if (length == current)
            return;
        await GrowFileAsync(_connection.Channel, _handle, length).ConfigureAwait(false);
        GrowTo(length);
    }

    /// <summary>Makes the file <paramref name="length"/> bytes long by writing a zero byte at its last offset.</summary>
    internal static ValueTask GrowFileAsync(SftpChannel channel, byte[] handle, long length) =>
        channel.WriteAsync(handle, length - 1, s_oneZero.AsMemory());

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

    public override async ValueTask DisposeAsync()
    {
        try
        {
            await _connection.Channel.CloseAsync(_handle).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            // The connection is gone: nothing is left to release on the server.
        }
        _connection.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
