using Block.Drivers;

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
}
