namespace Block.Cli.Common;

/// <summary>
/// QEMU's cache modes (<c>-t</c>/<c>-T</c>): how the page cache, flushes and write-through combine.
/// </summary>
/// <param name="Direct">Bypass the page cache (O_DIRECT).</param>
/// <param name="NoFlush">Ignore flushes.</param>
/// <param name="WriteThrough">Every write reaches stable storage before it completes.</param>
internal readonly record struct CacheMode(bool Direct, bool NoFlush, bool WriteThrough)
{
    /// <summary>Parses <c>none</c>, <c>writeback</c>, <c>writethrough</c>, <c>directsync</c> or <c>unsafe</c> (and QEMU's <c>off</c> = none).</summary>
    public static bool TryParse(string text, out CacheMode mode)
    {
        switch (text)
        {
            case "none":
            case "off":
                mode = new CacheMode(true, false, false);
                return true;
            case "writeback":
                mode = new CacheMode(false, false, false);
                return true;
            case "writethrough":
                mode = new CacheMode(false, false, true);
                return true;
            case "directsync":
                mode = new CacheMode(true, false, true);
                return true;
            case "unsafe":
                mode = new CacheMode(false, true, false);
                return true;
            default:
                mode = default;
                return false;
        }
    }

    public static CacheMode Writeback => new(false, false, false);

    public static CacheMode Unsafe => new(false, true, false);
}
