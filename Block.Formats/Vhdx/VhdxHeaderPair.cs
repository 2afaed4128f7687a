using System.Globalization;
using Block.Graph;

namespace Block.Formats.Vhdx;

/// <summary>
/// The two header slots of an image and which one is current; updates write the other slot, so one valid header
/// survives any crash.
/// </summary>
/// <remarks>Every update is done twice, as QEMU does: both slots then hold valid headers with consecutive numbers,
/// and the older one is never more than one update behind.</remarks>
internal sealed class VhdxHeaderPair
{
    private readonly BlockNode _file;
    private int _currentSlot;

    private VhdxHeaderPair(BlockNode file, VhdxHeader current, int slot)
    {
        _file = file;
        Current = current;
        _currentSlot = slot;
    }

    /// <summary>The header in force.</summary>
    public VhdxHeader Current { get; private set; }

    /// <summary>
    /// Reads both headers and picks the current one: the valid one with the higher sequence number; equal numbers are
    /// accepted only for identical headers.
    /// </summary>
    public static async ValueTask<VhdxHeaderPair> ReadAsync(BlockNode file)
    {
        var bytes = new byte[2 * VhdxHeader.Size];
        long have = Math.Min(file.Length, VhdxHeader.Offset2 + VhdxHeader.Size);
        if (have > VhdxHeader.Offset1)
            await file.ReadAsync(VhdxHeader.Offset1, bytes.AsMemory(0, (int)Math.Min(VhdxHeader.Size, have - VhdxHeader.Offset1))).ConfigureAwait(false);
        if (have > VhdxHeader.Offset2)
            await file.ReadAsync(VhdxHeader.Offset2, bytes.AsMemory(VhdxHeader.Size, (int)(have - VhdxHeader.Offset2))).ConfigureAwait(false);
        var h1 = VhdxHeader.TryParse(bytes.AsSpan(0, VhdxHeader.Size));
        var h2 = VhdxHeader.TryParse(bytes.AsSpan(VhdxHeader.Size));
        if (h1 is null && h2 is null)
            throw Invalid(file, "no valid header (both header 1 at 64 KiB and header 2 at 128 KiB fail their signature, checksum or version)");
        VhdxHeader current;
        int slot;
        if (h2 is null || (h1 is { } a && a.SequenceNumber > h2.Value.SequenceNumber))
            (current, slot) = (h1!.Value, 0);
        else if (h1 is null || h2.Value.SequenceNumber > h1.Value.SequenceNumber)
            (current, slot) = (h2.Value, 1);
        else if (bytes.AsSpan(0, VhdxHeader.Size).SequenceEqual(bytes.AsSpan(VhdxHeader.Size)))
            (current, slot) = (h1.Value, 0);
        else
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"both headers have sequence number {h1.Value.SequenceNumber} but differ"));

        if (current.LogVersion != 0)
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"header log version {current.LogVersion} is not 0"));
        if (current.LogOffset % VhdxLayout.MiB != 0 || current.LogLength % VhdxLayout.MiB != 0)
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"header log offset 0x{current.LogOffset:x} or log length 0x{current.LogLength:x} is not a multiple of 1 MiB"));
        if (current.LogLength != 0 && (current.LogOffset < VhdxLayout.MiB || current.LogOffset > (ulong)file.Length || current.LogLength > (ulong)file.Length - current.LogOffset))
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"header log of 0x{current.LogLength:x} bytes at 0x{current.LogOffset:x} lies outside the file ({file.Length} bytes) or in the header section"));
        return new VhdxHeaderPair(file, current, slot);
    }

    /// <summary>Writes the header <paramref name="change"/> makes of the current one (with the next sequence number) twice, flushing after each.</summary>
    public async ValueTask UpdateAsync(Func<VhdxHeader, VhdxHeader> change)
    {
        var block = new byte[VhdxHeader.Size];
        for (int i = 0; i < 2; i++)
        {
            var next = change(Current) with { SequenceNumber = Current.SequenceNumber + 1 };
            next.WriteTo(block);
            int slot = 1 - _currentSlot;
            await _file.WriteAsync(slot == 0 ? VhdxHeader.Offset1 : VhdxHeader.Offset2, block).ConfigureAwait(false);
            await _file.FlushAsync().ConfigureAwait(false);
            Current = next;
            _currentSlot = slot;
        }
    }

    /// <summary>An error for a malformed image, naming the file.</summary>
    public static ImageFormatException Invalid(BlockNode file, string what) => new($"Invalid VHDX image '{file.Filename}': {what}");
}
