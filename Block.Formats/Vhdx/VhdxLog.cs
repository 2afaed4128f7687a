using System.Buffers.Binary;
using System.Globalization;
using Block.Graph;

namespace Block.Formats.Vhdx;

/// <summary>
/// The VHDX log: a circular buffer of 4 KiB sectors through which metadata changes reach the file, so that a crash
/// between the log entry and the in-place write is repaired by replaying the entry on the next read/write open.
/// </summary>
/// <remarks>
/// Each metadata write is a sequence of one entry, as QEMU writes them: LogGuid set in both headers, the entry
/// written and flushed, the sectors written in place and flushed, LogGuid cleared. A crash before the entry is
/// complete leaves a log with no valid entry (and the old metadata); a crash after it leaves an entry that replay
/// applies again (writes are idempotent).
/// </remarks>
internal sealed class VhdxLog
{
    /// <summary>The log's unit: entries, descriptors' targets and data sectors are 4 KiB.</summary>
    public const int SectorSize = 4096;

    private const uint EntrySignature = 0x65676f6c; // "loge"
    private const uint DataDescriptorSignature = 0x63736564; // "desc"
    private const uint ZeroDescriptorSignature = 0x6f72657a; // "zero"
    private const uint DataSectorSignature = 0x61746164; // "data"
    private const int EntryHeaderSize = 64, DescriptorSize = 32;

    /// <summary>The farthest a replayed write may reach: beyond any valid image (64 TiB of data plus metadata).</summary>
    private const long MaxFileOffset = 1L << 47;

    private readonly BlockNode _file;
    private readonly VhdxHeaderPair _headers;
    private long _writePosition;
    private ulong _sequence = 1;

    public VhdxLog(BlockNode file, VhdxHeaderPair headers)
    {
        _file = file;
        _headers = headers;
    }

    private long LogOffset => (long)_headers.Current.LogOffset;

    private long LogLength => _headers.Current.LogLength;

    /// <summary>
    /// Writes the 4 KiB sector at <paramref name="fileOffset"/> with <paramref name="sector"/> through the log: the
    /// entry first, then the sector in place, each flushed before the next step.
    /// </summary>
    public async ValueTask WriteSectorAsync(long fileOffset, ReadOnlyMemory<byte> sector)
    {
        if (LogLength < 2 * SectorSize)
            throw new ImageFormatException($"Invalid VHDX image '{_file.Filename}': the log is too small for an entry", Errno.EIO);
        var logGuid = Guid.NewGuid();
        await _headers.UpdateAsync(h => h with { LogGuid = logGuid }).ConfigureAwait(false);

        var entry = new byte[2 * SectorSize];
        if (_writePosition + entry.Length > LogLength)
            _writePosition = 0;
        ulong sequence = _sequence++;
        var s = entry.AsSpan();
        var target = sector.Span;
        BinaryPrimitives.WriteUInt32LittleEndian(s, EntrySignature);
        BinaryPrimitives.WriteUInt32LittleEndian(s[8..], (uint)entry.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(s[12..], (uint)_writePosition);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(s[24..], 1);
        logGuid.TryWriteBytes(s.Slice(32, 16));
        ulong fileLength = (ulong)_file.Length;
        BinaryPrimitives.WriteUInt64LittleEndian(s[48..], fileLength);
        BinaryPrimitives.WriteUInt64LittleEndian(s[56..], fileLength);
        var d = s[EntryHeaderSize..];
        BinaryPrimitives.WriteUInt32LittleEndian(d, DataDescriptorSignature);
        target.Slice(SectorSize - 4, 4).CopyTo(d[4..]);
        target[..8].CopyTo(d[8..]);
        BinaryPrimitives.WriteUInt64LittleEndian(d[16..], (ulong)fileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(d[24..], sequence);
        var data = s[SectorSize..];
        BinaryPrimitives.WriteUInt32LittleEndian(data, DataSectorSignature);
        BinaryPrimitives.WriteUInt32LittleEndian(data[4..], (uint)(sequence >> 32));
        target[8..(SectorSize - 4)].CopyTo(data[8..]);
        BinaryPrimitives.WriteUInt32LittleEndian(data[(SectorSize - 4)..], (uint)sequence);
        VhdxChecksum.Store(s, 4);

        await _file.WriteAsync(LogOffset + _writePosition, entry).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
        _writePosition += entry.Length;

        // The entry is durable: the in-place write may now be torn by a crash, replay repeats it.
        await _file.WriteAsync(fileOffset, sector).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
        await _headers.UpdateAsync(h => h with { LogGuid = Guid.Empty }).ConfigureAwait(false);
    }

    /// <summary>
    /// The entries to replay for the current header's LogGuid: the newest complete sequence, from its tail to its head;
    /// null when the log holds no valid entry for that GUID.
    /// </summary>
    /// <remarks>
    /// The headers name a new LogGuid before the first entry with it is written, so a crash in between leaves a LogGuid
    /// with no entry: an empty log, as the specification and QEMU read it, with nothing to replay; the image opens
    /// even read-only.
    /// </remarks>
    /// <exception cref="ImageFormatException">A sequence that is incomplete.</exception>
    public async ValueTask<IReadOnlyList<EntryInfo>?> FindSequenceAsync()
    {
        var header = _headers.Current;
        if (LogLength == 0)
            throw Invalid("header LogGuid is set but the log length is 0");
        var entries = new Dictionary<long, EntryInfo>();
        EntryInfo? head = null;
        var sector = new byte[SectorSize];
        for (long position = 0; position < LogLength; position += SectorSize)
        {
            await _file.ReadAsync(LogOffset + position, sector).ConfigureAwait(false);
            var info = await TryReadEntryAsync(position, sector, header.LogGuid).ConfigureAwait(false);
            if (info is null)
                continue;
            entries[position] = info;
            if (head is null || info.Sequence > head.Sequence)
                head = info;
        }
        if (head is null)
            return null;

        // Walk from the head's tail to the head: every entry must be valid and numbered one after the other.
        var run = new List<EntryInfo>();
        long at = head.Tail;
        while (true)
        {
            if (!entries.TryGetValue(at, out var e) || (run.Count > 0 && e.Sequence != run[^1].Sequence + 1) || run.Count > entries.Count)
                throw Invalid(string.Create(CultureInfo.InvariantCulture, $"the log sequence ending at entry {head.Sequence} (log offset 0x{head.Position:x}) is incomplete from its tail at 0x{head.Tail:x}"));
            run.Add(e);
            if (e == head)
                break;
            at = (e.Position + e.Length) % LogLength;
        }
        return run;
    }

    /// <summary>Writes the entries of <paramref name="run"/> (from <see cref="FindSequenceAsync"/>) into the file, then clears LogGuid.</summary>
    /// <exception cref="BlockException">The file is shorter than the log says it was (EINVAL).</exception>
    public async ValueTask ReplayAsync(IReadOnlyList<EntryInfo> run)
    {
        var head = run[^1];
        // A file shorter than the log says it was when the entry was written was truncated; QEMU refuses it (after the
        // read-only refusal, with EINVAL and nothing more), and so do we, with its words.
        if ((ulong)_file.Length < head.FlushedFileOffset)
            throw new BlockException(Errno.EINVAL, $"Could not open '{_file.Filename}': Invalid argument");
        foreach (var e in run)
        {
            var bytes = await ReadCircularAsync(e.Position, e.Length).ConfigureAwait(false);
            int dataSector = 0;
            int descriptorSectors = DescriptorSectors(e.Descriptors);
            for (int i = 0; i < e.Descriptors; i++)
            {
                var d = bytes.AsSpan(EntryHeaderSize + i * DescriptorSize, DescriptorSize);
                if (BinaryPrimitives.ReadUInt32LittleEndian(d) == ZeroDescriptorSignature)
                {
                    ulong zeroLength = BinaryPrimitives.ReadUInt64LittleEndian(d[8..]);
                    ulong target = BinaryPrimitives.ReadUInt64LittleEndian(d[16..]);
                    await _file.WriteZeroesAsync((long)target, (long)zeroLength).ConfigureAwait(false);
                }
                else
                {
                    ulong target = BinaryPrimitives.ReadUInt64LittleEndian(d[16..]);
                    var data = bytes.AsMemory((descriptorSectors + dataSector++) * SectorSize, SectorSize);
                    // Restore the target's first 8 and last 4 bytes, which the data sector's signature and sequence replaced.
                    d.Slice(8, 8).CopyTo(data.Span);
                    d.Slice(4, 4).CopyTo(data.Span[(SectorSize - 4)..]);
                    await _file.WriteAsync((long)target, data).ConfigureAwait(false);
                }
            }
        }
        if ((ulong)_file.Length < head.LastFileOffset)
            await _file.TruncateAsync((long)head.LastFileOffset).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
        await _headers.UpdateAsync(h => h with { LogGuid = Guid.Empty }).ConfigureAwait(false);
    }

    /// <summary>One valid log entry: where it is, its tail, sequence number, descriptors and the file sizes it records.</summary>
    internal sealed record EntryInfo(long Position, long Length, long Tail, ulong Sequence, int Descriptors, ulong FlushedFileOffset, ulong LastFileOffset);

    private static int DescriptorSectors(int descriptors) => (EntryHeaderSize + descriptors * DescriptorSize + SectorSize - 1) / SectorSize;

    /// <summary>The entry starting at <paramref name="position"/> if it is whole and valid for <paramref name="logGuid"/>, else null.</summary>
    private async ValueTask<EntryInfo?> TryReadEntryAsync(long position, byte[] first, Guid logGuid)
    {
        ReadOnlySpan<byte> s = first;
        if (BinaryPrimitives.ReadUInt32LittleEndian(s) != EntrySignature || new Guid(s.Slice(32, 16)) != logGuid)
            return null;
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(s[8..]);
        uint tail = BinaryPrimitives.ReadUInt32LittleEndian(s[12..]);
        ulong sequence = BinaryPrimitives.ReadUInt64LittleEndian(s[16..]);
        uint descriptors = BinaryPrimitives.ReadUInt32LittleEndian(s[24..]);
        ulong flushed = BinaryPrimitives.ReadUInt64LittleEndian(s[48..]), last = BinaryPrimitives.ReadUInt64LittleEndian(s[56..]);
        if (length == 0 || length % SectorSize != 0 || length > LogLength || tail % SectorSize != 0 || tail >= LogLength || sequence == 0
            || descriptors > length / DescriptorSize)
            return null;
        int descriptorSectors = DescriptorSectors((int)descriptors);
        if (descriptorSectors * (long)SectorSize > length)
            return null;
        var bytes = await ReadCircularAsync(position, length).ConfigureAwait(false);
        if (!VhdxChecksum.IsValid(bytes, 4))
            return null;
        int dataSectors = 0;
        for (int i = 0; i < descriptors; i++)
        {
            var d = bytes.AsSpan(EntryHeaderSize + i * DescriptorSize, DescriptorSize);
            uint signature = BinaryPrimitives.ReadUInt32LittleEndian(d);
            ulong target = BinaryPrimitives.ReadUInt64LittleEndian(d[16..]);
            ulong targetLength = SectorSize;
            if (BinaryPrimitives.ReadUInt64LittleEndian(d[24..]) != sequence || target % SectorSize != 0)
                return null;
            if (signature == ZeroDescriptorSignature)
            {
                targetLength = BinaryPrimitives.ReadUInt64LittleEndian(d[8..]);
                if (targetLength % SectorSize != 0 || targetLength > MaxFileOffset || target > MaxFileOffset - targetLength)
                    return null;
            }
            else if (signature == DataDescriptorSignature)
            {
                long at = (descriptorSectors + dataSectors++) * (long)SectorSize;
                if (at + SectorSize > length || target > MaxFileOffset)
                    return null;
                var data = bytes.AsSpan((int)at, SectorSize);
                if (BinaryPrimitives.ReadUInt32LittleEndian(data) != DataSectorSignature
                    || BinaryPrimitives.ReadUInt32LittleEndian(data[4..]) != (uint)(sequence >> 32)
                    || BinaryPrimitives.ReadUInt32LittleEndian(data[(SectorSize - 4)..]) != (uint)sequence)
                    return null;
            }
            else
            {
                return null;
            }
            // Replay must never write over the log it is reading.
            if (target < (ulong)(LogOffset + LogLength) && (ulong)LogOffset < target + targetLength)
                return null;
        }
        return new EntryInfo(position, length, tail, sequence, (int)descriptors, flushed, Math.Min(last, MaxFileOffset));
    }

    /// <summary>Reads <paramref name="length"/> bytes of the log from <paramref name="position"/>, wrapping at its end.</summary>
    private async ValueTask<byte[]> ReadCircularAsync(long position, long length)
    {
        var bytes = new byte[length];
        long first = Math.Min(length, LogLength - position);
        await _file.ReadAsync(LogOffset + position, bytes.AsMemory(0, (int)first)).ConfigureAwait(false);
        if (first < length)
            await _file.ReadAsync(LogOffset, bytes.AsMemory((int)first)).ConfigureAwait(false);
        return bytes;
    }

    private ImageFormatException Invalid(string what) => VhdxHeaderPair.Invalid(_file, what);
}
