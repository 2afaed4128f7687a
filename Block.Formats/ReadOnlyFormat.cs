using Block.Drivers;
using Block.Graph;

namespace Block.Formats;

/// <summary>What the read-only formats of this package (bochs, cloop, dmg) share when they open.</summary>
internal static class ReadOnlyFormat
{
    /// <summary>
    /// Refuses a read-write open with QEMU's words (<c>Image is read-only</c>, EACCES): these formats are read-only in
    /// QEMU 7.2, so a writer must ask for <c>read-only</c> explicitly rather than find its writes refused later.
    /// </summary>
    /// <remarks>Called after the file child opened, as QEMU checks: a missing file is reported as missing first.</remarks>
    public static void EnsureReadOnly(NodeOpenContext context)
    {
        if (!context.Node.ReadOnly)
            throw new BlockException(Errno.EACCES, "Image is read-only");
    }

    /// <summary>
    /// Opens the file child of a read-only format node, refuses a read-write open, and reads the first
    /// <paramref name="headerSize"/> bytes; a shorter file leaves zeroes past its end, as QEMU reads it.
    /// </summary>
    /// <returns>The file, the header bytes, and how many of them the file held.</returns>
    public static async ValueTask<(BlockNode File, byte[] Header, int Stored)> OpenAsync(NodeOpenContext context, int headerSize,
        CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsGenericFormat)context.Options;
        var file = (await context.OpenChildAsync("file", options.File, ChildRole.Storage, cancellationToken).ConfigureAwait(false)).Node;
        EnsureReadOnly(context);
        var header = new byte[headerSize];
        int stored = (int)Math.Min(file.Length, headerSize);
        await file.ReadAsync(0, header.AsMemory(0, stored)).ConfigureAwait(false);
        return (file, header, stored);
    }
}
