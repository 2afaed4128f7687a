using Block.TestSupport;

namespace Block.Formats.Tests.Cloop;

/// <summary>cloop images made by Debian's <c>create_compressed_fs</c> (cloop-utils), the tool that writes the format.</summary>
internal static class CloopImages
{
    /// <summary>
    /// A disk of <paramref name="length"/> bytes: random data with zero stretches and a repeated pattern between, so
    /// blocks compress to different sizes (some barely, some to almost nothing).
    /// </summary>
    public static byte[] Content(int length, int seed = 1)
    {
        var content = Patterns.Random(length, seed);
        for (int at = length / 5; at < length; at += length / 3)
            content.AsSpan(at, Math.Min(length - at, 70000)).Clear();
        Patterns.Fill(Math.Min(length / 7, 40000), 0x5a).CopyTo(content, length / 2);
        return content;
    }

    /// <summary>
    /// Compresses <paramref name="content"/> with <c>create_compressed_fs -B <paramref name="blockSize"/></c> (and
    /// <c>-L <paramref name="level"/></c> if given) into <paramref name="path"/>; returns the path.
    /// </summary>
    public static string Create(TempDirectory dir, string path, byte[] content, int blockSize = 65536, int? level = null)
    {
        string input = dir.File(Path.GetFileName(path) + ".in");
        File.WriteAllBytes(input, content);
        var args = new List<string> { "-q", "-B", blockSize.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (level is { } l)
            args.AddRange(["-L", l.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        args.AddRange([input, path]);
        ProcessRunner.Run("create_compressed_fs", args).EnsureSuccess("create_compressed_fs (apt-get install cloop-utils)");
        File.Delete(input);
        return path;
    }
}
