using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Fuzz.Memory;

/// <summary>One open <c>fuzz-memory</c> node. Single-threaded use only: every request completes synchronously.</summary>
internal sealed class MemoryNodeDriver : NodeDriver
{
    private byte[] _bytes;
    private long _length;

    public MemoryNodeDriver(BlockNode node, byte[] data)
        : base(node)
    {
        _bytes = (byte[])data.Clone();
        _length = data.Length;
    }

    public override long Length => _length;

    public override string Filename => MemoryDriver.DriverName;

    public override long? AllocatedSize => _length;

    public override RequestFlags SupportedZeroFlags => RequestFlags.MayUnmap;

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        int available = (int)Math.Clamp(_length - offset, 0, buffers.Length);
        if (available > 0)
            buffers.Slice(0, available).CopyFrom(_bytes.AsSpan((int)offset, available));
        if (available < buffers.Length)
            buffers.Slice(available).Clear();
        return default;
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (!TryGrow(offset + buffers.Length))
            return NoSpace();
        buffers.CopyTo(_bytes.AsSpan((int)offset, buffers.Length));
        return default;
    }

    public override ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        if (!TryGrow(offset + length))
            return NoSpace();
        _bytes.AsSpan((int)offset, (int)length).Clear();
        return default;
    }

    public override ValueTask DiscardAsync(long offset, long length)
    {
        long end = Math.Min(_length, offset + length);
        if (end > offset)
            _bytes.AsSpan((int)offset, (int)(end - offset)).Clear();
        return default;
    }

    public override ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact)
    {
        if (!TryGrow(length))
            return NoSpace();
        if (length < _length)
            _bytes.AsSpan((int)length, (int)(_length - length)).Clear();
        _length = length;
        return default;
    }

    private bool TryGrow(long end)
    {
        if (end > MemoryDriver.MaxLength)
            return false;
        if (end > _bytes.Length)
            Array.Resize(ref _bytes, (int)Math.Max(end, Math.Min(MemoryDriver.MaxLength, (long)_bytes.Length * 2)));
        _length = Math.Max(_length, end);
        return true;
    }

    private static ValueTask NoSpace() =>
        ValueTask.FromException(new BlockException(Errno.ENOSPC, $"{MemoryDriver.DriverName}: the node may not grow beyond {MemoryDriver.MaxLength} bytes"));
}
