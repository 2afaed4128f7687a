using System.Buffers.Binary;
using Block.Qcow2.Format;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    private volatile MetadataMap _metadata = MetadataMap.Empty;
    private long[] _inactiveL2 = [];

    /// <summary>
    /// Fails a write to <c>[offset, offset + length)</c> of the image file that would land on metadata of a kind the
    /// overlap-check options protect (minus <paramref name="ignore"/>, the kind being written): marks the image corrupt,
    /// raises <c>BLOCK_IMAGE_CORRUPTED</c> and throws EIO.
    /// </summary>
    internal ValueTask CheckOverlapAsync(long offset, long length, Qcow2OverlapFlags ignore)
    {
        var mask = _overlapFlags & ~ignore;
        if (mask == Qcow2OverlapFlags.None || length <= 0)
            return default;
        var hit = _metadata.FindOverlap(_layout.AlignDown(offset), _layout.AlignUp(offset + length), mask);
        if (hit == Qcow2OverlapFlags.None)
            return default;
        return ThrowOverlapAsync(offset, length, hit);
    }

    private async ValueTask ThrowOverlapAsync(long offset, long length, Qcow2OverlapFlags hit) =>
        throw await SignalCorruptionAsync($"Preventing invalid write on metadata (overlaps with {Qcow2OverlapChecks.Describe(hit)})",
            offset, length).ConfigureAwait(false);

    /// <summary>True if a data write to <c>[host, host + length)</c> may go ahead without the slow path's checks.</summary>
    private bool DataWriteIsSafe(long host, long length) =>
        _hasDataFile || _overlapFlags == Qcow2OverlapFlags.None
        || _metadata.FindOverlap(_layout.AlignDown(host), _layout.AlignUp(host + length), _overlapFlags) == Qcow2OverlapFlags.None;

    /// <summary>Rebuilds the map of metadata ranges after metadata moved (under the lock; readers use the old map until then).</summary>
    private void RefreshMetadataMap()
    {
        if (_overlapFlags == Qcow2OverlapFlags.None)
            return;
        int cs = _layout.ClusterSize;
        var ranges = new List<MetadataMap.Range>
        {
            new(0, cs, Qcow2OverlapFlags.MainHeader),
        };
        if (_header.L1Size > 0)
            ranges.Add(new((long)_header.L1TableOffset, (long)_header.L1TableOffset + _l1.Length * 8L, Qcow2OverlapFlags.ActiveL1));
        foreach (long l2 in _activeL2)
            ranges.Add(new(l2, l2 + cs, Qcow2OverlapFlags.ActiveL2));
        ranges.Add(new(_refcounts.TableOffset, _refcounts.TableOffset + (long)_refcounts.TableClusters * cs, Qcow2OverlapFlags.RefcountTable));
        var table = _refcounts.Table;
        for (int i = 0; i < table.Count; i++)
        {
            long block = (long)(table[i] & Qcow2Layout.OffsetMask);
            if (block != 0)
                ranges.Add(new(block, block + cs, Qcow2OverlapFlags.RefcountBlock));
        }
        if (_header.NbSnapshots > 0)
            ranges.Add(new((long)_header.SnapshotsOffset, (long)_header.SnapshotsOffset + Math.Max(_snapshotTableLength, 1), Qcow2OverlapFlags.SnapshotTable));
        foreach (var s in _snapshots)
        {
            if (s.L1Size > 0)
                ranges.Add(new((long)s.L1TableOffset, (long)s.L1TableOffset + s.L1Size * 8L, Qcow2OverlapFlags.InactiveL1));
        }
        foreach (long l2 in _inactiveL2)
            ranges.Add(new(l2, l2 + cs, Qcow2OverlapFlags.InactiveL2));
        if (_header.BitmapsExtension is { Length: >= 24 } ext)
        {
            long size = (long)BinaryPrimitives.ReadUInt64BigEndian(ext.AsSpan(8));
            long offset = (long)BinaryPrimitives.ReadUInt64BigEndian(ext.AsSpan(16));
            if (size > 0)
                ranges.Add(new(offset, offset + size, Qcow2OverlapFlags.BitmapDirectory));
        }
        _metadata = new MetadataMap(ranges);
    }

    /// <summary>Reads every snapshot's L1 table to learn the L2 tables only snapshots use (overlap template <c>all</c>).</summary>
    private async ValueTask LoadInactiveL2Async()
    {
        if ((_overlapFlags & Qcow2OverlapFlags.InactiveL2) == 0 || _snapshots.Count == 0)
        {
            _inactiveL2 = [];
            return;
        }
        var set = new HashSet<long>();
        foreach (var s in _snapshots.Where(s => s.L1Problem(_layout.ClusterSize) is null))
        {
            var l1 = await ReadTableAsync(_file, (long)s.L1TableOffset, s.L1Size, "snapshot L1 table", _file.Length).ConfigureAwait(false);
            foreach (ulong e in l1)
            {
                long l2 = (long)(e & Qcow2Layout.OffsetMask);
                if (l2 != 0 && !_activeL2.Contains(l2))
                    set.Add(l2);
            }
        }
        _inactiveL2 = [.. set];
    }

    /// <summary>An immutable, sorted list of metadata ranges, searched without locks.</summary>
    private sealed class MetadataMap
    {
        public static readonly MetadataMap Empty = new([]);

        private readonly Range[] _ranges;
        private readonly long[] _maxEnd;

        public MetadataMap(List<Range> ranges)
        {
            ranges.Sort((a, b) => a.Start.CompareTo(b.Start));
            _ranges = [.. ranges];
            _maxEnd = new long[_ranges.Length];
            long max = long.MinValue;
            for (int i = 0; i < _ranges.Length; i++)
                _maxEnd[i] = max = Math.Max(max, _ranges[i].End);
        }

        /// <summary>The kind of the first range of a kind in <paramref name="mask"/> that meets <c>[start, end)</c>.</summary>
        public Qcow2OverlapFlags FindOverlap(long start, long end, Qcow2OverlapFlags mask)
        {
            var ranges = _ranges;
            int lo = 0, hi = ranges.Length;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (ranges[mid].Start < start)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            for (int i = lo; i < ranges.Length && ranges[i].Start < end; i++)
            {
                if ((ranges[i].Kind & mask) != 0)
                    return ranges[i].Kind;
            }
            for (int i = lo - 1; i >= 0 && _maxEnd[i] > start; i--)
            {
                if (ranges[i].End > start && (ranges[i].Kind & mask) != 0)
                    return ranges[i].Kind;
            }
            return Qcow2OverlapFlags.None;
        }

        public readonly record struct Range(long Start, long End, Qcow2OverlapFlags Kind);
    }
}
