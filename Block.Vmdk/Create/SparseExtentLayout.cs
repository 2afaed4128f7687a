using Block.Vmdk.Format;

namespace Block.Vmdk.Create;

/// <summary>
/// Where QEMU puts the metadata of a new sparse extent: header at sector 0, 20 sectors for the descriptor, the
/// redundant grain directory and its tables, the grain directory and its tables, and grains from the next multiple
/// of the grain size. Every table is preallocated, so writes never allocate metadata.
/// </summary>
/// <param name="Header">The header to write.</param>
/// <param name="FirstRedundantTableSector">Where the redundant grain tables start.</param>
/// <param name="FirstTableSector">Where the grain tables start.</param>
/// <param name="TableCount">How many grain tables there are.</param>
internal sealed record SparseExtentLayout(SparseExtentHeader Header, long FirstRedundantTableSector, long FirstTableSector, long TableCount)
{
    /// <summary>Sectors per grain of new extents (64 KiB).</summary>
    public const long GranularitySectors = 128;

    /// <summary>Entries per grain table of new extents.</summary>
    public const uint TableEntries = 512;

    /// <summary>Sectors reserved for the embedded descriptor.</summary>
    public const long DescriptorSectors = 20;

    /// <summary>Sectors one grain table takes.</summary>
    public const long TableSectors = TableEntries * 4 / 512;

    /// <summary>The layout of an extent of <paramref name="capacitySectors"/>.</summary>
    public static SparseExtentLayout For(long capacitySectors, bool zeroedGrain, bool streamOptimized)
    {
        long perTable = GranularitySectors * TableEntries;
        long tables = (capacitySectors + perTable - 1) / perTable;
        long directorySectors = (tables * 4 + 511) / 512;
        long redundantDirectory = 1 + DescriptorSectors;
        long redundantTables = redundantDirectory + directorySectors;
        long directory = redundantTables + tables * TableSectors;
        long firstTable = directory + directorySectors;
        long end = firstTable + tables * TableSectors;
        long overhead = (end + GranularitySectors - 1) / GranularitySectors * GranularitySectors;

        var flags = SparseExtentFlags.ValidNewlineTest | SparseExtentFlags.RedundantGrainTable;
        if (zeroedGrain)
            flags |= SparseExtentFlags.ZeroedGrainEntries;
        if (streamOptimized)
            flags |= SparseExtentFlags.CompressedGrains | SparseExtentFlags.Markers;
        uint version = streamOptimized ? 3u : zeroedGrain ? 2u : 1u;
        var header = new SparseExtentHeader(version, flags, (ulong)capacitySectors, GranularitySectors, 1, DescriptorSectors, TableEntries,
            (ulong)redundantDirectory, (ulong)directory, (ulong)overhead, 0, streamOptimized ? SparseExtentHeader.CompressionDeflate : (ushort)0);
        return new SparseExtentLayout(header, redundantTables, firstTable, tables);
    }

    /// <summary>
    /// Writes the extent's metadata into the empty file behind <paramref name="file"/>: header, descriptor area
    /// (with <paramref name="descriptor"/>, if any), both grain directories filled in; the grain tables are the zeroes
    /// of the file extended to the first grain.
    /// </summary>
    public async ValueTask WriteAsync(Graph.BlockBackend file, ReadOnlyMemory<byte> descriptor)
    {
        if (descriptor.Length > DescriptorSectors * 512)
            throw new BlockOptionsException($"The VMDK descriptor ({descriptor.Length} bytes) does not fit in {DescriptorSectors * 512} bytes");
        // Header and descriptor are written as they are, not as the 21 sectors reserved for them: the rest stays a
        // hole, as in QEMU's files.
        var head = new byte[512 + (descriptor.Length + 511) / 512 * 512];
        Header.Write(head);
        descriptor.Span.CopyTo(head.AsSpan(512));
        await file.WriteAsync(0, head).ConfigureAwait(false);
        await file.WriteAsync((long)Header.RedundantGrainDirectorySector * 512, Directory(FirstRedundantTableSector)).ConfigureAwait(false);
        await file.WriteAsync((long)Header.GrainDirectorySector * 512, Directory(FirstTableSector)).ConfigureAwait(false);
        await file.TruncateAsync((long)Header.OverheadSectors * 512, Qapi.PreallocMode.Off, exact: true).ConfigureAwait(false);
    }

    private byte[] Directory(long firstTable)
    {
        var bytes = new byte[(TableCount * 4 + 511) / 512 * 512];
        for (long i = 0; i < TableCount; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)(i * 4)), checked((uint)(firstTable + i * TableSectors)));
        return bytes;
    }
}
