using System.Buffers.Text;

namespace Block.Curl.Transfer;

/// <summary>The response header lines the curl drivers read: the status line, <c>Accept-Ranges</c> and <c>Content-Range</c>.</summary>
internal static class CurlHeader
{
    /// <summary>True for a status line (<c>HTTP/1.1 206 …</c>), which starts a new response (after a redirect, say).</summary>
    public static bool IsStatusLine(ReadOnlySpan<byte> line) => line.StartsWith("HTTP/"u8);

    /// <summary>
    /// True for <c>Accept-Ranges: bytes</c>: the name in any case, then <c>bytes</c> and nothing but white space,
    /// QEMU's rule.
    /// </summary>
    public static bool IsAcceptRangesBytes(ReadOnlySpan<byte> line)
    {
        if (!TryValue(line, "accept-ranges:"u8, out var value))
            return false;
        return value.SequenceEqual("bytes"u8);
    }

    /// <summary>Parses <c>Content-Range: bytes FIRST-LAST/TOTAL</c> (TOTAL may be <c>*</c>).</summary>
    public static bool TryContentRange(ReadOnlySpan<byte> line, out long first, out long last)
    {
        first = last = -1;
        if (!TryValue(line, "content-range:"u8, out var value) || !value.StartsWith("bytes "u8))
            return false;
        value = value[6..].TrimStart(" "u8);
        int dash = value.IndexOf((byte)'-');
        int slash = value.IndexOf((byte)'/');
        if (dash <= 0 || slash <= dash + 1)
            return false;
        return Utf8Parser.TryParse(value[..dash], out first, out int a) && a == dash &&
            Utf8Parser.TryParse(value[(dash + 1)..slash], out last, out int b) && b == slash - dash - 1;
    }

    private static bool TryValue(ReadOnlySpan<byte> line, ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        value = default;
        if (line.Length < name.Length || !System.Text.Ascii.EqualsIgnoreCase(line[..name.Length], name))
            return false;
        value = line[name.Length..].Trim(" \t\r\n"u8);
        return true;
    }
}
