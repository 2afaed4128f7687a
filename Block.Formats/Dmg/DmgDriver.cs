using Block.Drivers;
using Block.Graph;
using Block.Options;

namespace Block.Formats.Dmg;

/// <summary>
/// The <c>dmg</c> format: Apple disk images (UDIF), read-only as in QEMU 7.2: zero, raw, ignored, zlib and bzip2
/// chunks from the blkx tables of the resource fork or the XML property list.
/// </summary>
/// <remarks>
/// Register it with <c>registry.AddDmg()</c> (or <c>registry.AddFormats()</c> for every format of this package). bzip2
/// chunks use the system libbz2, loaded when the first one is read; lzfse chunks (no library here) are left out with
/// QEMU's warning, and reading them fails with an error that says why.
/// </remarks>
public sealed class DmgDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "dmg";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    /// <remarks>As QEMU, by the file name only (<c>.dmg</c>, a weak 2): the trailer is at the end, out of the probe's sight.</remarks>
    public override int Probe(ReadOnlySpan<byte> header, string? filename) =>
        filename is { Length: > 4 } && filename.EndsWith(".dmg", StringComparison.Ordinal) ? 2 : 0;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) =>
        new BlockdevOptionsGenericFormat(Name) { File = reader.RequiredRef("file", parser) };

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsGenericFormat)context.Options;
        var file = (await context.OpenChildAsync("file", options.File, ChildRole.Storage, cancellationToken).ConfigureAwait(false)).Node;
        ReadOnlyFormat.EnsureReadOnly(context);
        // QEMU's refusals without a message of their own read "Could not open 'file': Invalid argument".
        Exception Invalid() => new ImageFormatException($"Could not open '{file.Filename}': Invalid argument");
        Exception Refuse(string message)
        {
            context.Graph.ReportError(message);
            return Invalid();
        }

        long searchStart = DmgTrailer.SearchStart(file.Length);
        var search = new byte[(int)Math.Min(DmgTrailer.SectorLength(file.Length), DmgTrailer.SearchBytes)];
        await DmgBlkxReader.ReadPaddedAsync(file, (ulong)searchStart, search).ConfigureAwait(false);
        long at = searchStart + DmgTrailer.Find(search, file.Length);
        var bytes = new byte[DmgTrailer.Size];
        await DmgBlkxReader.ReadPaddedAsync(file, (ulong)at, bytes).ConfigureAwait(false);
        var trailer = DmgTrailer.Parse(at, bytes, Invalid);

        var table = new DmgChunkTable();
        await DmgBlkxReader.ReadAsync(file, trailer, table, Invalid, Refuse, context.Graph.Warn).ConfigureAwait(false);
        return new DmgNodeDriver(context.Node, file, trailer.SectorCount, table);
    }
}
