using Block.Graph;

namespace Block.Streams;

/// <summary>
/// A <see cref="Stream"/> over a backend or a node, for code written against <see cref="Stream"/> (as DiscUtils users
/// have): seekable, readable, writable unless read-only, with any position and length.
/// </summary>
/// <remarks>
/// The stream keeps a position, so it is not for concurrent use; the offset-based methods of
/// <see cref="BlockBackend"/> and <see cref="BlockNode"/> stay the ones to use from many threads. Reads and writes
/// are clipped to the device: reading at the end returns 0, and writing past it fails as the device does (EIO),
/// unless <see cref="SetLength"/> grows the device first.
/// </remarks>
public sealed class BlockStream : Stream
{
    private readonly BlockBackend? _backend;
    private readonly BlockNode? _node;
    private readonly bool _ownsBackend;
    private long _position;
    private bool _disposed;

    /// <summary>A stream over a backend; disposing the stream disposes the backend when <paramref name="ownsBackend"/>.</summary>
    public BlockStream(BlockBackend backend, bool ownsBackend = false)
    {
        _backend = backend;
        _ownsBackend = ownsBackend;
    }

    /// <summary>A stream over a node, bypassing backend accounting and error policies.</summary>
    public BlockStream(BlockNode node)
    {
        _node = node;
    }

    /// <inheritdoc />
    public override bool CanRead => !_disposed;

    /// <inheritdoc />
    public override bool CanSeek => !_disposed;

    /// <inheritdoc />
    public override bool CanWrite => !_disposed && (_backend?.CanWrite ?? !_node!.ReadOnly);

    /// <inheritdoc />
    public override long Length
    {
        get
        {
            ThrowIfDisposed();
            return _backend?.Length ?? _node!.Length;
        }
    }

    /// <inheritdoc />
    public override long Position
    {
        get => _position;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _position = value;
        }
    }

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override int Read(Span<byte> buffer)
    {
        // Synchronous callers get a synchronous path: the request completes inline with an inline engine, and
        // otherwise this blocks on it, which is what Stream.Read means.
        var array = System.Buffers.ArrayPool<byte>.Shared.Rent(buffer.Length);
        try
        {
            int n = ReadAsync(array.AsMemory(0, buffer.Length)).AsTask().GetAwaiter().GetResult();
            array.AsSpan(0, n).CopyTo(buffer);
            return n;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(array);
        }
    }

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        cancellationToken.ThrowIfCancellationRequested();
        long length = Length;
        if (_position >= length || buffer.Length == 0)
            return 0;
        int n = (int)Math.Min(buffer.Length, length - _position);
        if (_backend != null)
            await _backend.ReadAsync(_position, buffer[..n]).ConfigureAwait(false);
        else
            await _node!.ReadAsync(_position, buffer[..n]).ConfigureAwait(false);
        _position += n;
        return n;
    }

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) =>
        WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer) =>
        WriteAsync(buffer.ToArray()).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        cancellationToken.ThrowIfCancellationRequested();
        if (buffer.Length == 0)
            return;
        if (_backend != null)
            await _backend.WriteAsync(_position, buffer).ConfigureAwait(false);
        else
            await _node!.WriteAsync(_position, buffer).ConfigureAwait(false);
        _position += buffer.Length;
    }

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override void Flush() => FlushAsync(CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc />
    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        return (_backend != null ? _backend.FlushAsync() : _node!.FlushAsync()).AsTask();
    }

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin)
    {
        long target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            SeekOrigin.End => Length + offset,
            _ => throw new ArgumentOutOfRangeException(nameof(origin)),
        };
        if (target < 0)
            throw new IOException("An attempt was made to move the position before the beginning of the stream.");
        _position = target;
        return target;
    }

    /// <summary>Resizes the device (grow, or shrink).</summary>
    public override void SetLength(long value)
    {
        ThrowIfDisposed();
        var task = _backend != null ? _backend.TruncateAsync(value) : _node!.TruncateAsync(value);
        task.AsTask().GetAwaiter().GetResult();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (!_disposed && disposing && _ownsBackend)
            _backend!.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _disposed = true;
        base.Dispose(disposing);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
