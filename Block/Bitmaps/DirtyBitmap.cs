using System.Buffers.Binary;
using System.Numerics;
using Block.Qapi;

namespace Block.Bitmaps;

/// <summary>
/// A dirty bitmap (QEMU's <c>BdrvDirtyBitmap</c>): one bit per <see cref="Granularity"/> bytes of a node, set when
/// the range it covers is written while the bitmap is <see cref="Enabled"/>. Bitmaps belong to a node
/// (<see cref="Graph.BlockNode.DirtyBitmaps"/>); persistent ones are stored in the image by its format driver.
/// </summary>
/// <remarks>
/// <para>Bit <c>n</c> covers bytes <c>[n·g, (n+1)·g)</c>. Setting or resetting a range acts on every bit the range
/// touches (a partial reset clears the whole group, as QEMU's HBitmap does); <see cref="Count"/> counts whole groups.</para>
/// <para>Bits live in pages of 8 KiB (65536 bits) allocated on the first set bit, so an empty or sparse bitmap of a
/// large disk costs a page directory only (8 bytes per 4 GiB at 64 KiB granularity). The serialized form is the
/// qcow2 one: bit <c>n</c> is bit <c>n % 8</c> of byte <c>n / 8</c>, bits past the end zero.</para>
/// <para>All members are thread-safe; the request path marks bitmaps from any number of threads.</para>
/// </remarks>
public sealed class DirtyBitmap
{
    /// <summary>The smallest granularity QEMU accepts.</summary>
    public const long MinGranularity = 512;

    /// <summary>Most bits one bitmap may have (2^36: 4 TiB at 64 bytes… 4 PiB at 64 KiB); the page directory stays under 8 MiB.</summary>
    public const long MaxBits = 1L << 36;

    private const int PageBits = 16;
    private const int WordsPerPage = (1 << PageBits) / 64;
    private readonly object _sync = new();
    private ulong[]?[] _pages;

    /// <summary>Creates an empty bitmap over <paramref name="length"/> bytes.</summary>
    /// <param name="name">The name (null for an anonymous bitmap, as jobs create).</param>
    /// <param name="length">Bytes of the node the bitmap covers.</param>
    /// <param name="granularity">Bytes per bit: a power of two of at least <see cref="MinGranularity"/>.</param>
    /// <exception cref="BlockException">EINVAL for a bad granularity; ENOMEM for more than <see cref="MaxBits"/> bits.</exception>
    public DirtyBitmap(string? name, long length, long granularity)
    {
        if (granularity < MinGranularity || !BitOperations.IsPow2(granularity))
            throw new BlockException(Errno.EINVAL, "Granularity must be power of 2 and at least 512");
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Name = name;
        Granularity = granularity;
        GranularityBits = BitOperations.Log2((ulong)granularity);
        Length = length;
        BitCount = BitsFor(length);
        _pages = new ulong[]?[PagesFor(BitCount)];
    }

    /// <summary>The name, or null for an anonymous bitmap.</summary>
    public string? Name { get; }

    /// <summary>Bytes per bit.</summary>
    public long Granularity { get; }

    /// <summary>log2 of <see cref="Granularity"/>.</summary>
    public int GranularityBits { get; }

    /// <summary>Bytes of the node the bitmap covers.</summary>
    public long Length { get; private set; }

    /// <summary>Number of bits: <see cref="Length"/> / <see cref="Granularity"/>, rounded up.</summary>
    public long BitCount { get; private set; }

    /// <summary>Bytes of the serialized form: <see cref="BitCount"/> / 8, rounded up.</summary>
    public long SerializedLength => (BitCount + 7) >> 3;

    /// <summary>True if the bitmap records writes to its node (QEMU's "recording"; qcow2's <c>auto</c> flag).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>True if the node's format driver stores the bitmap in the image when the node closes.</summary>
    public bool Persistent { get; set; }

    /// <summary>
    /// True if the stored copy was found in use (its writer did not close the image cleanly): its bits cannot be
    /// trusted and every operation but removal refuses it.
    /// </summary>
    public bool Inconsistent { get; init; }

    /// <summary>True if the bitmap's node is read-only: it can be enabled, disabled and read, not changed.</summary>
    public bool ReadOnly { get; set; }

    /// <summary>True while an operation (a backup job, an export) uses the bitmap; it then refuses other users.</summary>
    public bool Busy { get; set; }

    /// <summary>Dirty bytes: set bits times <see cref="Granularity"/> (a partial last group counts in full).</summary>
    public long Count
    {
        get
        {
            long bits = 0;
            lock (_sync)
            {
                foreach (var page in _pages)
                {
                    if (page is null)
                        continue;
                    foreach (ulong w in page)
                        bits += BitOperations.PopCount(w);
                }
            }
            return bits << GranularityBits;
        }
    }

    /// <summary>True if the group holding byte <paramref name="offset"/> is dirty.</summary>
    public bool IsDirty(long offset)
    {
        long bit = offset >> GranularityBits;
        if (offset < 0 || bit >= BitCount)
            return false;
        lock (_sync)
        {
            var page = _pages[bit >> PageBits];
            return page != null && (page[(bit >> 6) & (WordsPerPage - 1)] & (1UL << (int)(bit & 63))) != 0;
        }
    }

    /// <summary>Marks every group that <c>[offset, offset + bytes)</c> touches (the part inside the bitmap).</summary>
    public void SetDirty(long offset, long bytes)
    {
        if (ToBits(offset, bytes) is not var (first, end))
            return;
        lock (_sync)
            SetBitsLocked(first, end);
    }

    /// <summary>Clears every group that <c>[offset, offset + bytes)</c> touches.</summary>
    public void ResetDirty(long offset, long bytes)
    {
        if (ToBits(offset, bytes) is not var (first, end))
            return;
        lock (_sync)
        {
            for (long bit = first; bit < end;)
            {
                long pageEnd = Math.Min(end, ((bit >> PageBits) + 1) << PageBits);
                var page = _pages[bit >> PageBits];
                if (page != null)
                    ChangeBits(page, bit, pageEnd, set: false);
                bit = pageEnd;
            }
        }
    }

    /// <summary>Clears every bit.</summary>
    public void Clear()
    {
        lock (_sync)
            Array.Clear(_pages);
    }

    /// <summary>The offset of the first dirty group at or after byte <paramref name="offset"/>, or -1.</summary>
    public long NextDirty(long offset)
    {
        long bit = Math.Max(0, offset) >> GranularityBits;
        lock (_sync)
        {
            long found = NextBitLocked(bit, set: true);
            return found < 0 ? -1 : Math.Max(offset, found << GranularityBits);
        }
    }

    /// <summary>
    /// The offset of the first clean group at or after byte <paramref name="offset"/>, or <see cref="Length"/> when
    /// every group from there on is dirty.
    /// </summary>
    public long NextClean(long offset)
    {
        long bit = Math.Max(0, offset) >> GranularityBits;
        if (bit >= BitCount)
            return Length;
        lock (_sync)
        {
            long found = NextBitLocked(bit, set: false);
            return found < 0 ? Length : Math.Min(Length, Math.Max(offset, found << GranularityBits));
        }
    }

    /// <summary>The dirty ranges in order, adjacent groups joined, clipped to <see cref="Length"/>.</summary>
    public IReadOnlyList<(long Offset, long Length)> DirtyRanges()
    {
        var ranges = new List<(long, long)>();
        lock (_sync)
        {
            long bit = 0;
            while ((bit = NextBitLocked(bit, set: true)) >= 0)
            {
                long clean = NextBitLocked(bit, set: false);
                long end = clean < 0 ? BitCount : clean;
                long start = bit << GranularityBits;
                ranges.Add((start, Math.Min(Length, end << GranularityBits) - start));
                bit = end;
            }
        }
        return ranges;
    }

    /// <summary>
    /// Sets every group of this bitmap that a dirty group of <paramref name="source"/> touches (QEMU's merge; the
    /// granularities may differ).
    /// </summary>
    /// <exception cref="BlockException">EINVAL: the bitmaps cover different lengths.</exception>
    public void Merge(DirtyBitmap source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Length != Length)
            throw new BlockException(Errno.EINVAL,
                $"Bitmaps are of different sizes (destination size is {Length}, source size is {source.Length}) and can't be merged");
        if (ReferenceEquals(source, this))
            return;
        foreach (var (offset, length) in source.DirtyRanges())
            SetDirty(offset, length);
    }

    /// <summary>Follows a resize of the node: new groups start clean, groups wholly past the new end are dropped.</summary>
    public void Resize(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        long bits = BitsFor(length);
        lock (_sync)
        {
            var pages = new ulong[]?[PagesFor(bits)];
            Array.Copy(_pages, pages, Math.Min(pages.Length, _pages.Length));
            if (bits < BitCount && pages.Length > 0 && pages[^1] is { } last)
            {
                // Bits past the new end must read as clean if the disk grows again.
                long lastStart = (long)(pages.Length - 1) << PageBits;
                ChangeBits(last, bits, lastStart + (1 << PageBits), set: false);
            }
            _pages = pages;
            BitCount = bits;
            Length = length;
        }
    }

    /// <summary>Copies the serialized bytes <c>[byteOffset, byteOffset + destination.Length)</c> (past the end: zeroes).</summary>
    /// <param name="byteOffset">A multiple of 8 (qcow2 serializes whole clusters).</param>
    /// <param name="destination">Where to copy.</param>
    public void Serialize(long byteOffset, Span<byte> destination)
    {
        CheckSerializedOffset(byteOffset);
        destination.Clear();
        lock (_sync)
        {
            long word = byteOffset >> 3;
            for (int pos = 0; pos < destination.Length; pos += 8, word++)
            {
                var page = (word >> (PageBits - 6)) < _pages.Length ? _pages[word >> (PageBits - 6)] : null;
                if (page is null)
                {
                    // Skip to the next page boundary.
                    long skip = WordsPerPage - (word & (WordsPerPage - 1)) - 1;
                    pos += (int)Math.Min(skip * 8, destination.Length);
                    word += skip;
                    continue;
                }
                ulong w = page[word & (WordsPerPage - 1)];
                if (pos + 8 <= destination.Length)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(destination[pos..], w);
                }
                else
                {
                    for (int i = 0; pos + i < destination.Length; i++)
                        destination[pos + i] = (byte)(w >> (i * 8));
                }
            }
        }
    }

    /// <summary>True if the serialized bytes <c>[byteOffset, byteOffset + bytes)</c> are all zero.</summary>
    public bool IsSerializedRangeClean(long byteOffset, long bytes)
    {
        CheckSerializedOffset(byteOffset);
        long first = byteOffset << 3;
        long end = Math.Min(BitCount, (byteOffset + bytes) << 3);
        if (first >= end)
            return true;
        lock (_sync)
        {
            long found = NextBitLocked(first, set: true);
            return found < 0 || found >= end;
        }
    }

    /// <summary>Sets the bits of serialized bytes <c>[byteOffset, byteOffset + source.Length)</c> that are set in <paramref name="source"/>.</summary>
    /// <remarks>Bits past <see cref="BitCount"/> are ignored (qcow2 requires them zero; a stray one must not count).</remarks>
    public void Deserialize(long byteOffset, ReadOnlySpan<byte> source)
    {
        CheckSerializedOffset(byteOffset);
        lock (_sync)
        {
            long word = byteOffset >> 3;
            for (int pos = 0; pos < source.Length; pos += 8, word++)
            {
                ulong w;
                if (pos + 8 <= source.Length)
                {
                    w = BinaryPrimitives.ReadUInt64LittleEndian(source[pos..]);
                }
                else
                {
                    w = 0;
                    for (int i = 0; pos + i < source.Length; i++)
                        w |= (ulong)source[pos + i] << (i * 8);
                }
                if (w == 0)
                    continue;
                long bit = word << 6;
                if (bit >= BitCount)
                    break;
                if (BitCount - bit < 64)
                    w &= (1UL << (int)(BitCount - bit)) - 1;
                var page = PageFor(bit);
                page[word & (WordsPerPage - 1)] |= w;
            }
        }
    }

    /// <summary>Sets every bit of serialized bytes <c>[byteOffset, byteOffset + bytes)</c> (a qcow2 "all ones" cluster).</summary>
    public void DeserializeOnes(long byteOffset, long bytes)
    {
        CheckSerializedOffset(byteOffset);
        long first = byteOffset << 3;
        long end = Math.Min(BitCount, (byteOffset + bytes) << 3);
        if (first >= end)
            return;
        lock (_sync)
            SetBitsLocked(first, end);
    }

    /// <summary>The bitmap as QMP's <c>query-block</c> lists it.</summary>
    public BlockDirtyInfo GetInfo() => new()
    {
        Name = Name,
        Count = Count,
        Granularity = (uint)Granularity,
        Status = Busy ? DirtyBitmapStatus.Frozen : Enabled ? DirtyBitmapStatus.Active : DirtyBitmapStatus.Disabled,
        Recording = Enabled,
        Busy = Busy,
        Persistent = Persistent,
        Inconsistent = Inconsistent ? true : null,
    };

    /// <inheritdoc />
    public override string ToString() => $"{Name ?? "(anonymous)"} ({Granularity} bytes per bit, {BitCount} bits)";

    private long BitsFor(long length)
    {
        long bits = (long)(((ulong)length + (ulong)Granularity - 1) >> GranularityBits);
        if (bits > MaxBits)
            throw new BlockException(Errno.ENOMEM, $"A dirty bitmap of {bits} bits is too large (at most {MaxBits}); use a larger granularity");
        return bits;
    }

    private static int PagesFor(long bits) => (int)((bits + (1 << PageBits) - 1) >> PageBits);

    private static void CheckSerializedOffset(long byteOffset)
    {
        if (byteOffset < 0 || (byteOffset & 7) != 0)
            throw new ArgumentOutOfRangeException(nameof(byteOffset), byteOffset, "Serialized offsets are non-negative multiples of 8");
    }

    private (long First, long End)? ToBits(long offset, long bytes)
    {
        if (bytes <= 0 || offset < 0 || offset >= Length)
            return null;
        long last = Math.Min(Length, offset + Math.Min(bytes, Length - offset)) - 1;
        return (offset >> GranularityBits, (last >> GranularityBits) + 1);
    }

    private ulong[] PageFor(long bit) => _pages[bit >> PageBits] ??= new ulong[WordsPerPage];

    private void SetBitsLocked(long first, long end)
    {
        for (long bit = first; bit < end;)
        {
            long pageEnd = Math.Min(end, ((bit >> PageBits) + 1) << PageBits);
            ChangeBits(PageFor(bit), bit, pageEnd, set: true);
            bit = pageEnd;
        }
    }

    /// <summary>Sets or clears bits <c>[first, end)</c>, all inside the page <paramref name="page"/>.</summary>
    private static void ChangeBits(ulong[] page, long first, long end, bool set)
    {
        while (first < end)
        {
            int word = (int)((first >> 6) & (WordsPerPage - 1));
            int lo = (int)(first & 63);
            int n = (int)Math.Min(64 - lo, end - first);
            ulong mask = (n == 64 ? ulong.MaxValue : (1UL << n) - 1) << lo;
            if (set)
                page[word] |= mask;
            else
                page[word] &= ~mask;
            first += n;
        }
    }

    /// <summary>The first bit at or after <paramref name="bit"/> that is set (or clear), or -1.</summary>
    private long NextBitLocked(long bit, bool set)
    {
        while (bit < BitCount)
        {
            var page = _pages[bit >> PageBits];
            if (page is null)
            {
                if (!set)
                    return bit;
                bit = ((bit >> PageBits) + 1) << PageBits;
                continue;
            }
            int word = (int)((bit >> 6) & (WordsPerPage - 1));
            ulong w = set ? page[word] : ~page[word];
            w &= ulong.MaxValue << (int)(bit & 63);
            if (w != 0)
            {
                long found = (bit & ~63L) + BitOperations.TrailingZeroCount(w);
                return found < BitCount ? found : -1;
            }
            bit = (bit & ~63L) + 64;
        }
        return -1;
    }
}
