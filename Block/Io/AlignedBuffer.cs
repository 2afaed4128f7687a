using System.Buffers;
using System.Runtime.InteropServices;

namespace Block.Io;

/// <summary>
/// A block of native memory aligned for direct I/O, usable as <see cref="Memory{T}"/>. Rented from an
/// <see cref="AlignedBufferPool"/>; <see cref="Dispose()"/> hands it back.
/// </summary>
/// <remarks>
/// Native memory never moves, so pinning it for a system call costs nothing and its address stays aligned:
/// an <c>O_DIRECT</c> read needs buffers aligned to the device's memory alignment (4 KiB covers every device seen).
/// </remarks>
public sealed unsafe class AlignedBuffer : MemoryManager<byte>
{
    private readonly AlignedBufferPool? _pool;
    private byte* _pointer;

    internal AlignedBuffer(int capacity, int alignment, AlignedBufferPool? pool)
    {
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)capacity, (nuint)alignment);
        Capacity = capacity;
        Alignment = alignment;
        _pool = pool;
    }

    /// <summary>Allocates an unpooled buffer; <see cref="Dispose()"/> frees it.</summary>
    public static AlignedBuffer Allocate(int capacity, int alignment = AlignedBufferPool.DefaultAlignment) =>
        new(capacity, alignment, null);

    /// <summary>Usable bytes.</summary>
    public int Capacity { get; }

    /// <summary>Alignment of the first byte.</summary>
    public int Alignment { get; }

    /// <summary>Address of the first byte.</summary>
    public byte* Pointer => _pointer;

    /// <summary>The whole buffer as a span.</summary>
    public Span<byte> Span => new(_pointer, Capacity);

    /// <inheritdoc />
    public override Span<byte> GetSpan() => new(_pointer, Capacity);

    /// <inheritdoc />
    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    /// <inheritdoc />
    public override void Unpin()
    {
    }

    /// <summary>Returns the buffer to its pool (or frees it), zeroing it first when <paramref name="clear"/> is set.</summary>
    /// <remarks>Buffers that held key material or guest data another tenant must not see are returned with clear = true.</remarks>
    public void Return(bool clear)
    {
        if (clear)
            Span.Clear();
        if (_pool is null || !_pool.TryReturn(this))
            Free();
    }

    /// <summary>Returns the buffer to its pool without clearing it.</summary>
    public void Dispose() => Return(clear: false);

    /// <inheritdoc />
    protected override void Dispose(bool disposing) => Return(clear: false);

    internal void Free()
    {
        var p = _pointer;
        _pointer = null;
        if (p != null)
            NativeMemory.AlignedFree(p);
    }
}
