using System.Runtime.CompilerServices;

namespace Block.Vmdk.Extents;

/// <summary>
/// The grain tables of one sparse extent that are in memory: a direct-mapped cache indexed by grain directory index.
/// Lookups are lock-free; the extent fills and updates slots under its metadata lock.
/// </summary>
/// <remarks>
/// A 64 KiB-grain table is 2 KiB and maps 32 MiB, so the default budget (16 MiB of tables) holds every table of a
/// 256 GiB extent: a random read then costs no metadata I/O at all. Larger extents share slots; a displaced table is
/// read again (2 KiB) when needed. Tables are written through to the file whenever they change, so a slot is never
/// dirty and can be replaced at any time.
/// </remarks>
internal sealed class GrainTableCache
{
    /// <summary>Bytes of tables kept in memory at most.</summary>
    public const int BudgetBytes = 16 << 20;

    private readonly Table?[] _slots;
    private readonly int _mask;

    public GrainTableCache(long directoryEntries, int tableBytes)
    {
        long wanted = Math.Max(1, Math.Min(directoryEntries, Math.Max(1, BudgetBytes / tableBytes)));
        int slots = 1;
        while (slots < wanted)
            slots <<= 1;
        _slots = new Table?[slots];
        _mask = slots - 1;
    }

    /// <summary>The cached entries of table <paramref name="directoryIndex"/>, or null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint[]? TryGet(long directoryIndex)
    {
        var t = Volatile.Read(ref _slots[(int)directoryIndex & _mask]);
        return t != null && t.DirectoryIndex == directoryIndex ? t.Entries : null;
    }

    /// <summary>Puts a table in its slot, replacing whatever was there. The caller holds the extent's metadata lock.</summary>
    public void Put(long directoryIndex, uint[] entries) =>
        Volatile.Write(ref _slots[(int)directoryIndex & _mask], new Table(directoryIndex, entries));

    private sealed record Table(long DirectoryIndex, uint[] Entries);
}
