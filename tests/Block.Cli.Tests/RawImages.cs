using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>Raw images with known layouts, written by the oracle.</summary>
internal static class RawImages
{
    /// <summary>A 4 MiB image with data, written zeroes, a discarded range, a zero range and a punched hole.</summary>
    public static string Layout(TempDirectory dir, string name = "lay.raw")
    {
        string path = dir.File(name);
        using (var f = File.Create(path))
            f.SetLength(4 << 20);
        QemuIo.RunChecked(path, "raw",
            "write -P 0xaa 0 64k", "write -z 128k 64k", "write -P 0 256k 64k", "write -P 0xbb 512k 64k", "discard 512k 64k",
            "write -P 0xcc 1M 4k", "write -z -u 2M 64k", "write -P 0xdd 4092k 4k");
        return path;
    }

    /// <summary>A sparse file of <paramref name="size"/> bytes with optional data at <paramref name="dataOffset"/>.</summary>
    public static string Sparse(TempDirectory dir, string name, long size, long? dataOffset = null, int dataLength = 512, byte pattern = 0x11)
    {
        string path = dir.File(name);
        using (var f = File.Create(path))
            f.SetLength(size);
        if (dataOffset is { } o)
            QemuIo.RunChecked(path, "raw", $"write -P {pattern} {o} {dataLength}");
        return path;
    }
}
