namespace Block.Bench;

/// <summary>A fully allocated raw file for the benchmarks, written once and kept in the page cache.</summary>
internal static class BenchImage
{
    public const long Size = 256L << 20;

    public static string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "blk-bench-256m.raw");

    /// <summary>The same data as a fully allocated qcow2 image (64 KiB clusters, made by qemu-img convert).</summary>
    public static string Qcow2Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "blk-bench-256m.qcow2");

    public static string EnsureQcow2()
    {
        string raw = Ensure();
        if (File.Exists(Qcow2Path) && File.GetLastWriteTimeUtc(Qcow2Path) >= File.GetLastWriteTimeUtc(raw))
            return Qcow2Path;
        using var p = System.Diagnostics.Process.Start("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, Qcow2Path])!;
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException("qemu-img convert failed (install qemu-utils)");
        return Qcow2Path;
    }

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
