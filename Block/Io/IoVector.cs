using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Block.Io;

/// <summary>
/// A scatter-gather list: the bytes of one request, spread over any number of memory segments.
/// </summary>
/// <remarks>
/// A virtio request is a list of guest-memory segments, so requests carry lists from the device down to
/// <c>preadv</c>/<c>pwritev</c> without copying. The struct is allocation free: a single buffer is held directly,
/// several segments are held as a caller-owned array, and <see cref="Slice(int, int)"/> trims without copying the list.
/// For writes the segments are only read; <see cref="FromReadOnly(ReadOnlyMemory{byte})"/> wraps read-only input.
/// </remarks>
public readonly struct IoVector
{
    private readonly Memory<byte> _first;
    private readonly ReadOnlyMemory<Memory<byte>> _rest;
    private readonly int _length;

    /// <summary>Creates a one-segment vector over <paramref name="buffer"/>.</summary>
    public IoVector(Memory<byte> buffer)
    {
        _first = buffer;
        _rest = default;
        _length = buffer.Length;
    }

    /// <summary>Creates a vector over <paramref name="segments"/>, in order. The array is not copied.</summary>
    /// <exception cref="ArgumentException">The segments add up to more than <see cref="int.MaxValue"/> bytes.</exception>
    public IoVector(ReadOnlyMemory<Memory<byte>> segments)
    {
        long total = 0;
        foreach (var s in segments.Span)
            total += s.Length;
        if (total > int.MaxValue)
            throw new ArgumentException("An I/O vector may hold at most 2 GiB - 1 bytes.", nameof(segments));
        if (segments.IsEmpty)
        {
            _first = default;
            _rest = default;
        }
        else
        {
            _first = segments.Span[0];
            _rest = segments[1..];
        }
        _length = (int)total;
    }

    private IoVector(Memory<byte> first, ReadOnlyMemory<Memory<byte>> rest, int length)
    {
        _first = first;
        _rest = rest;
        _length = length;
    }

    /// <summary>Wraps read-only data for a write request; the block layer never writes into write buffers.</summary>
    public static IoVector FromReadOnly(ReadOnlyMemory<byte> data) => new(MemoryMarshal.AsMemory(data));

    /// <summary>Converts a buffer into a one-segment vector.</summary>
    public static implicit operator IoVector(Memory<byte> buffer) => new(buffer);


    /// <summary>Total number of bytes.</summary>
    public int Length => _length;

    /// <summary>True when all bytes are in one segment, the common case that takes the <c>pread</c> fast path.</summary>
    public bool IsSingleSegment => _first.Length >= _length;

    /// <summary>The first segment, trimmed to the vector's length.</summary>
    public Memory<byte> FirstSegment => _first.Length > _length ? _first[.._length] : _first;

    /// <summary>Number of segments that hold at least one byte of the vector.</summary>
    public int SegmentCount
    {
        get
        {
            if (_length == 0)
                return 0;
            if (IsSingleSegment)
                return 1;
            int count = 1, remaining = _length - _first.Length;
            foreach (var s in _rest.Span)
            {
                if (remaining <= 0)
                    break;
                if (s.Length == 0)
                    continue;
                count++;
                remaining -= s.Length;
            }
            return count;
        }
    }

    /// <summary>Enumerates the non-empty segments, trimmed to the vector's length.</summary>
    public SegmentEnumerator GetEnumerator() => new(this);

    /// <summary>Returns the bytes <c>[offset, offset + length)</c> of this vector as a vector, without copying.</summary>
    public IoVector Slice(int offset, int length)
    {
        if ((uint)offset > (uint)_length || (uint)length > (uint)(_length - offset))
            ThrowSliceOutOfRange();
        if (offset < _first.Length)
            return new IoVector(_first[offset..], _rest, length);
        offset -= _first.Length;
        var rest = _rest.Span;
        for (int i = 0; i < rest.Length; i++)
        {
            if (offset < rest[i].Length)
                return new IoVector(rest[i][offset..], _rest[(i + 1)..], length);
            offset -= rest[i].Length;
        }
        return new IoVector(Memory<byte>.Empty, default, 0);
    }

    /// <summary>Returns the bytes from <paramref name="offset"/> to the end.</summary>
    public IoVector Slice(int offset) => Slice(offset, _length - offset);

    /// <summary>Copies the whole vector into <paramref name="destination"/>.</summary>
    public void CopyTo(Span<byte> destination)
    {
        if (destination.Length < _length)
            ThrowSliceOutOfRange();
        int done = 0;
        foreach (var s in this)
        {
            s.Span.CopyTo(destination[done..]);
            done += s.Length;
        }
    }

    /// <summary>Fills the vector from <paramref name="source"/>, which must hold at least <see cref="Length"/> bytes.</summary>
    public void CopyFrom(ReadOnlySpan<byte> source)
    {
        if (source.Length < _length)
            ThrowSliceOutOfRange();
        int done = 0;
        foreach (var s in this)
        {
            source.Slice(done, s.Length).CopyTo(s.Span);
            done += s.Length;
        }
    }

    /// <summary>Copies this vector's bytes into <paramref name="destination"/> (equal lengths).</summary>
    public void CopyTo(IoVector destination)
    {
        if (destination.Length != _length)
            ThrowSliceOutOfRange();
        if (IsSingleSegment)
        {
            destination.CopyFrom(FirstSegment.Span);
            return;
        }
        int done = 0;
        foreach (var s in this)
        {
            destination.Slice(done, s.Length).CopyFrom(s.Span);
            done += s.Length;
        }
    }

    /// <summary>Sets every byte to zero.</summary>
    public void Clear()
    {
        foreach (var s in this)
            s.Span.Clear();
    }

    /// <summary>Sets every byte to <paramref name="value"/>.</summary>
    public void Fill(byte value)
    {
        foreach (var s in this)
            s.Span.Fill(value);
    }

    /// <summary>True when every byte is zero (vectorised).</summary>
    public bool IsZero()
    {
        foreach (var s in this)
        {
            if (s.Span.IndexOfAnyExcept((byte)0) >= 0)
                return false;
        }
        return true;
    }

    /// <summary>Copies the bytes into a new array (for tests and cold paths).</summary>
    public byte[] ToArray()
    {
        var result = new byte[_length];
        CopyTo(result);
        return result;
    }

    /// <summary>
    /// Pins every segment and describes it as a native iovec, for <c>preadv</c>/<c>pwritev</c>.
    /// </summary>
    /// <returns>
    /// The number of iovecs filled, at most <paramref name="iovecs"/>' length; the caller disposes the handles after
    /// the system call.
    /// </returns>
    internal unsafe int Pin(Span<Interop.LibC.IoVec> iovecs, Span<MemoryHandle> handles)
    {
        int n = 0;
        foreach (var s in this)
        {
            if (n == iovecs.Length)
                break;
            var h = s.Pin();
            handles[n] = h;
            iovecs[n].Base = h.Pointer;
            iovecs[n].Length = (nuint)s.Length;
            n++;
        }
        return n;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowSliceOutOfRange() => throw new ArgumentOutOfRangeException("offset", "Range outside the I/O vector.");

    /// <summary>Enumerates the segments of an <see cref="IoVector"/> without allocating.</summary>
    public struct SegmentEnumerator
    {
        private readonly IoVector _vector;
        private int _index;
        private int _remaining;

        internal SegmentEnumerator(IoVector vector)
        {
            _vector = vector;
            _index = -1;
            _remaining = vector._length;
            Current = default;
        }

        /// <summary>The current segment.</summary>
        public Memory<byte> Current { get; private set; }

        /// <summary>Moves to the next non-empty segment.</summary>
        public bool MoveNext()
        {
            while (_remaining > 0)
            {
                if (_index >= _vector._rest.Length)
                    return false;
                Memory<byte> s = _index < 0 ? _vector._first : _vector._rest.Span[_index];
                _index++;
                if (s.Length == 0)
                    continue;
                if (s.Length > _remaining)
                    s = s[.._remaining];
                _remaining -= s.Length;
                Current = s;
                return true;
            }
            return false;
        }
    }
}
