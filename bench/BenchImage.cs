namespace Block.Bench;

/// <summary>A fully allocated raw file for the benchmarks, written once and kept in the page cache.</summary>
internal static class BenchImage
{
    public const long Size = 256L << 20;

    public static string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "blk-bench-256m.raw");

    public static string Ensure()
    {
        var info = new FileInfo(Path);
        if (info.Exists && info.Length == Size)
            return Path;
        var chunk = new byte[1 << 20];
        new Random(42).NextBytes(chunk);
        using var f = File.Create(Path);
        for (long written = 0; written < Size; written += chunk.Length)
            f.Write(chunk);
        f.Flush(flushToDisk: true);
        return Path;
    }
}
