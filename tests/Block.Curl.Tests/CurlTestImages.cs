using Block.TestSupport;

namespace Block.Curl.Tests;

/// <summary>The images the curl tests serve: random bytes (so a misplaced range shows) and a qcow2 made from them by qemu-img.</summary>
internal static class CurlTestImages
{
    /// <summary>Writes <c>disk.raw</c> (<paramref name="size"/> random bytes, seeded) and <c>disk.qcow2</c> into <paramref name="directory"/>.</summary>
    public static byte[] Write(string directory, int size = 4 << 20, int seed = 18)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        // A zero run, so that qcow2 leaves clusters unallocated and convert has holes to detect.
        Array.Clear(bytes, size / 4, size / 8);
        string raw = Path.Combine(directory, "disk.raw");
        File.WriteAllBytes(raw, bytes);
        QemuImg.Run("convert", "-f", "raw", "-O", "qcow2", raw, Path.Combine(directory, "disk.qcow2")).EnsureSuccess("qemu-img convert");
        return bytes;
    }
}
