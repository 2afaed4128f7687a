using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>qcow2 images with known contents, made by the oracle (qemu-img create, then qemu-io).</summary>
internal static class Qcow2Images
{
    /// <summary>
    /// A 64 MiB image with every kind of cluster: data, plain zero, preallocated zero (data then <c>write -z</c>),
    /// zero after <c>write -z -u</c>, compressed, a partial data cluster, a discarded cluster inside data, and data at
    /// the end.
    /// </summary>
    public static string Layout(string path, string? options = null)
    {
        QemuImg.Create("qcow2", path, "64M", options);
        QemuIo.RunChecked(path, "qcow2",
            "write -P 0xaa 0 64k", "write -z 128k 64k", "write -P 0xbb 256k 64k", "write -z 256k 64k",
            "write -P 0xcc 384k 64k", "write -z -u 384k 64k", "write -c -P 0xdd 512k 64k", "write -c -P 0xde 576k 64k",
            "write -P 0xee 1M 4k", "write -P 0x11 2M 1M", "discard 2304k 64k", "write -P 0x22 63M 1M");
        return path;
    }

    /// <summary>
    /// A chain base ← mid ← top in <paramref name="dir"/>: base has data at 0–1 MiB, mid at 512 KiB–1.5 MiB, and top
    /// (128 MiB, larger than its backing files) a zero cluster at 0 and data at 1 MiB. Returns top's path.
    /// </summary>
    public static string Chain(TempDirectory dir)
    {
        string basePath = dir.File("base.qcow2"), mid = dir.File("mid.qcow2"), top = dir.File("top.qcow2");
        QemuImg.Create("qcow2", basePath, "64M");
        QemuIo.RunChecked(basePath, "qcow2", "write -P 1 0 1M");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid).EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(mid, "qcow2", "write -P 2 512k 1M");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top, "128M").EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(top, "qcow2", "write -P 3 1M 64k", "write -z 0 64k");
        return top;
    }

    /// <summary>Sets incompatible feature bit 1 (corrupt) in a version 3 header.</summary>
    public static void MarkCorrupt(string path)
    {
        using var f = File.OpenWrite(path);
        f.Position = 79;
        f.WriteByte(0x02);
    }
}
