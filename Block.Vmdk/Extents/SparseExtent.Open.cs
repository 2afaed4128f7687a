using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Block.Graph;
using Block.Io;
using Block.Vmdk.Format;

namespace Block.Vmdk.Extents;

/// <summary>Opening sparse extents: header checks, the footer of streamOptimized files, the grain directories.</summary>
internal sealed partial class SparseExtent
{
    /// <summary>
    /// Opens a hosted sparse extent ("KDMV") in <paramref name="file"/>. A streamOptimized file whose header defers
    /// the grain directory to the footer is read through the footer, and can only be read.
    /// </summary>
    /// <returns>The extent and the header it was opened with (the footer's, where that holds the real one).</returns>
    public static async ValueTask<(SparseExtent Extent, SparseExtentHeader Header)> OpenHostedAsync(BlockNode file, long diskOffset,
        string typeName, IVmdkParent parent, AlignedBufferPool buffers, bool readOnly)
    {
        long fileLength = file.Impl.Length;
        var headerBytes = new byte[SparseExtentHeader.Size];
        if (fileLength < SparseExtentHeader.Size)
            throw new ImageFormatException($"VMDK sparse extent '{file.Filename}' is truncated: {fileLength} bytes, the header alone needs {SparseExtentHeader.Size}");
        await file.ReadAsync(0, headerBytes).ConfigureAwait(false);
        var header = SparseExtentHeader.Parse(headerBytes);
        string? readOnlyReason = null;
        if (header.GrainDirectorySector == SparseExtentHeader.GrainDirectoryAtEnd)
        {
            header = await ReadFooterAsync(file, fileLength).ConfigureAwait(false);
            readOnlyReason = "streamOptimized images with the grain directory in the footer (as VMware writes them) can only be read";
        }
        else if (header.Version == 3 && !header.IsCompressed)
        {
            readOnlyReason = "VMDK version 3 must be read only";
        }
        long directoryEntries = header.Validate(fileLength, readOnly || readOnlyReason != null);
        if (!readOnly && readOnlyReason != null)
            throw new ImageFormatException(readOnlyReason, Errno.EACCES);

        var directory = await ReadDirectoryAsync(file, buffers, "grain directory", header.GrainDirectorySector, directoryEntries, fileLength).ConfigureAwait(false);
        uint[]? redundant = null;
        if (header.HasRedundantGrainTables && header.RedundantGrainDirectorySector != 0)
            redundant = await ReadDirectoryAsync(file, buffers, "redundant grain directory", header.RedundantGrainDirectorySector, directoryEntries, fileLength).ConfigureAwait(false);

        var geometry = new SparseGeometry((long)header.CapacitySectors, (long)header.GranularitySectors, (int)header.GrainTableEntries,
            (long)header.OverheadSectors, header.HasZeroedGrains, header.IsCompressed, readOnlyReason);
        var extent = new SparseExtent(file, diskOffset, typeName, geometry, directory, redundant, fileLength, parent, buffers);
        if (header.IsCompressed && !readOnly)
            await extent.ReuseEndOfStreamAsync().ConfigureAwait(false);
        return (extent, header);
    }

    /// <summary>Opens an ESX sparse extent ("COWD"), read-only.</summary>
    public static async ValueTask<SparseExtent> OpenCowdAsync(BlockNode file, long diskOffset, string typeName, IVmdkParent parent,
        AlignedBufferPool buffers, bool readOnly)
    {
        long fileLength = file.Impl.Length;
        if (fileLength < CowdHeader.Size)
            throw new ImageFormatException($"VMDK COWD extent '{file.Filename}' is truncated: {fileLength} bytes, the header alone needs {CowdHeader.Size}");
        var headerBytes = new byte[CowdHeader.Size];
        await file.ReadAsync(0, headerBytes).ConfigureAwait(false);
        var header = CowdHeader.Parse(headerBytes);
        long entries = header.Validate(fileLength);
        const string reason = "vmfsSparse (COWD) extents can only be read";
        if (!readOnly)
            throw new ImageFormatException(reason, Errno.EACCES);
        var directory = await ReadDirectoryAsync(file, buffers, "COWD grain directory", header.GrainDirectorySector, entries, fileLength).ConfigureAwait(false);
        var geometry = new SparseGeometry(header.CapacitySectors, header.GranularitySectors, (int)CowdHeader.GrainTableEntries,
            0, ZeroedGrains: false, Compressed: false, reason);
        return new SparseExtent(file, diskOffset, typeName, geometry, directory, null, fileLength, parent, buffers);
    }

    /// <summary>
    /// Reads the footer of a streamOptimized file whose header says the grain directory is at the end: the last
    /// three sectors are a footer marker, a copy of the header with the real offsets, and an end-of-stream marker.
    /// </summary>
    private static async ValueTask<SparseExtentHeader> ReadFooterAsync(BlockNode file, long fileLength)
    {
        if (fileLength < SparseExtentHeader.Size + StreamMarker.FooterAreaSize)
            throw new ImageFormatException($"VMDK streamOptimized file '{file.Filename}' is too short ({fileLength} bytes) for its footer");
        long at = fileLength - StreamMarker.FooterAreaSize;
        var area = new byte[StreamMarker.FooterAreaSize];
        await file.ReadAsync(at, area).ConfigureAwait(false);
        var (_, markerSize, markerType) = StreamMarker.ReadMetadata(area);
        var (_, eosSize, eosType) = StreamMarker.ReadMetadata(area.AsSpan(1024));
        if (markerSize != 0 || markerType != StreamMarkerType.Footer || eosSize != 0 || eosType != StreamMarkerType.EndOfStream
            || !SparseExtentHeader.HasMagic(area.AsSpan(512)))
            throw new ImageFormatException($"Invalid footer of VMDK streamOptimized file '{file.Filename}' at offset {at}: expected footer marker, header copy and end-of-stream marker");
        var footer = SparseExtentHeader.Parse(area.AsSpan(512));
        if (footer.GrainDirectorySector == SparseExtentHeader.GrainDirectoryAtEnd)
            throw new ImageFormatException($"Footer of VMDK streamOptimized file '{file.Filename}' at offset {at + 512} does not locate the grain directory");
        return footer;
    }

    /// <summary>
    /// Reads a grain directory: <paramref name="entries"/> little-endian sector numbers at <paramref name="sector"/>,
    /// which must lie inside the file (so a header cannot make the reader allocate more than the file's size).
    /// </summary>
    private static async ValueTask<uint[]> ReadDirectoryAsync(BlockNode file, AlignedBufferPool buffers, string what, ulong sector,
        long entries, long fileLength)
    {
        if (sector > (ulong)(long.MaxValue / 512) || (long)sector * 512 + entries * 4 > fileLength)
            throw new ImageFormatException($"VMDK {what} at sector {sector} ({entries} entries) ends beyond the end of the file ({fileLength} bytes)");
        var directory = new uint[entries];
        await ReadEntriesAsync(file, buffers, (long)sector * 512, directory).ConfigureAwait(false);
        return directory;
    }

    /// <summary>Reads little-endian 32-bit entries at <paramref name="offset"/> into <paramref name="entries"/>, 1 MiB at a time.</summary>
    private static async ValueTask ReadEntriesAsync(BlockNode file, AlignedBufferPool buffers, long offset, uint[] entries)
    {
        const int Chunk = 1 << 20;
        long total = entries.LongLength * 4;
        var buffer = buffers.Rent((int)Math.Min(Chunk, Math.Max(total, 1)));
        try
        {
            for (long done = 0; done < total;)
            {
                int n = (int)Math.Min(Chunk, total - done);
                var memory = buffer.Memory[..n];
                await file.ReadAsync(offset + done, memory).ConfigureAwait(false);
                var target = MemoryMarshal.AsBytes(entries.AsSpan((int)(done / 4), n / 4));
                memory.Span.CopyTo(target);
                done += n;
            }
        }
        finally
        {
            buffer.Return(clear: false);
        }
        if (!BitConverter.IsLittleEndian)
            BinaryPrimitives.ReverseEndianness(entries, entries);
    }

    /// <summary>
    /// A streamOptimized file closed by this driver ends with an end-of-stream marker; new grains go where it is, so
    /// the stream stays one sequence of grains.
    /// </summary>
    private async ValueTask ReuseEndOfStreamAsync()
    {
        long last = _nextSector - 1;
        if (last < _geometry.OverheadSectors || (last << 9) + 512 > _fileLength)
            return;
        var sector = _buffers.Rent(512);
        try
        {
            await File.ReadAsync(last << 9, sector.Memory[..512]).ConfigureAwait(false);
            if (!sector.Span[..512].ContainsAnyExcept((byte)0))
                _nextSector = last;
        }
        finally
        {
            sector.Return(clear: false);
        }
    }
}
