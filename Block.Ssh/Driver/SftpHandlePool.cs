using Renci.SshNet.Sftp;

namespace Block.Ssh.Driver;

/// <summary>
/// The open SFTP handles of one image, each serving one request at a time, so that up to
/// <see cref="SshDriverOptions.MaxHandles"/> requests are in flight on the connection. A request prefers an idle
/// handle already positioned at its offset, which keeps SSH.NET's read-ahead of a sequential reader useful.
/// </summary>
internal sealed class SftpHandlePool : IAsyncDisposable
{
    private readonly SshConnection _connection;
    private readonly string _path;
    private readonly FileAccess _access;
    private readonly SemaphoreSlim _slots;
    private readonly Stack<SftpFileStream> _idle = new();
    private readonly Lock _lock = new();
    private bool _disposed;

    private SftpHandlePool(SshConnection connection, string path, FileAccess access, int maxHandles, SftpFileStream first)
    {
        _connection = connection;
        _path = path;
        _access = access;
        _slots = new SemaphoreSlim(maxHandles, maxHandles);
        _idle.Push(first);
    }

    /// <summary>Opens the first handle (so that a missing file fails the open) and returns the pool with it.</summary>
    public static async Task<SftpHandlePool> OpenAsync(SshConnection connection, string path, FileAccess access, int maxHandles, CancellationToken cancellationToken)
    {
        var first = await OpenHandleAsync(connection, path, FileMode.Open, access, cancellationToken).ConfigureAwait(false);
        return new SftpHandlePool(connection, path, access, Math.Max(1, maxHandles), first);
    }

    /// <summary>Opens one handle, with QEMU's message for a file that cannot be opened.</summary>
    public static async Task<SftpFileStream> OpenHandleAsync(SshConnection connection, string path, FileMode mode, FileAccess access, CancellationToken cancellationToken)
    {
        try
        {
            return await connection.Client.OpenAsync(path, mode, access, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw SshErrors.Open(path, e);
        }
    }

    /// <summary>The file's size as the server reports it now.</summary>
    public async ValueTask<long> StatLengthAsync()
    {
        var handle = await RentAsync(-1).ConfigureAwait(false);
        bool ok = false;
        try
        {
            long length = handle.Length;
            ok = true;
            return length;
        }
        catch (Exception e) when (e is not BlockException)
        {
            throw SshErrors.Io("fstat", e);
        }
        finally
        {
            Return(handle, ok);
        }
    }

    /// <summary>Waits for a free slot and returns an idle handle, the one at <paramref name="offset"/> if there is one, or a new one.</summary>
    public async ValueTask<SftpFileStream> RentAsync(long offset)
    {
        await _slots.WaitAsync().ConfigureAwait(false);
        lock (_lock)
        {
            if (_disposed)
            {
                _slots.Release();
                throw new ObjectDisposedException(nameof(SftpHandlePool));
            }
            if (_idle.Count > 0)
            {
                var top = _idle.Pop();
                if (top.Position == offset || _idle.Count == 0)
                    return top;
                // Few handles: a linear look for one already at the offset is cheaper than a stray read-ahead.
                var others = _idle.ToArray();
                _idle.Clear();
                SftpFileStream? match = null;
                foreach (var h in others)
                {
                    if (match is null && h.Position == offset)
                        match = h;
                    else
                        _idle.Push(h);
                }
                if (match is null)
                    return top;
                _idle.Push(top);
                return match;
            }
        }
        try
        {
            return await OpenHandleAsync(_connection, _path, FileMode.Open, _access, CancellationToken.None).ConfigureAwait(false);
        }
        catch
        {
            _slots.Release();
            throw;
        }
    }

    /// <summary>Returns a handle; one whose request failed is closed instead, since its position and buffers are unknown.</summary>
    public void Return(SftpFileStream handle, bool healthy)
    {
        bool keep;
        lock (_lock)
        {
            keep = healthy && !_disposed;
            if (keep)
                _idle.Push(handle);
        }
        if (!keep)
            CloseQuietly(handle);
        _slots.Release();
    }

    private static void CloseQuietly(SftpFileStream handle)
    {
        try
        {
            handle.Dispose();
        }
        catch (Exception)
        {
            // The connection is gone or the handle was already closed: nothing is left to release on the server.
        }
    }

    public async ValueTask DisposeAsync()
    {
        SftpFileStream[] handles;
        lock (_lock)
        {
            _disposed = true;
            handles = _idle.ToArray();
            _idle.Clear();
        }
        foreach (var h in handles)
        {
            try
            {
                await h.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception)
            {
                // As in CloseQuietly: a dead connection has no handle left to close.
            }
        }
    }
}
