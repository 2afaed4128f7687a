using Block.Drivers;
using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>Opening qcow2 images through the library, and what the oracle says about them.</summary>
internal static class Qcow2Images
{
    /// <summary>A graph that knows the core drivers, qcow2 and any extra (test) drivers.</summary>
    public static BlockGraph NewGraph(params BlockDriver[] extra)
    {
        var registry = DriverRegistry.CreateDefault().AddQcow2();
        foreach (var d in extra)
            registry.Add(d);
        return new BlockGraph(new BlockGraphOptions { Drivers = registry });
    }

    /// <summary>Opens <paramref name="path"/> as qcow2, writable unless asked, with discards passed down as qemu-io does.</summary>
    public static BlockBackend Open(BlockGraph graph, string path, bool readOnly = false) =>
        graph.OpenImageAsync(path, new ImageOpenOptions
        {
            Format = "qcow2",
            ReadOnly = readOnly,
            Discard = BlockdevDiscardOptions.Unmap,
        }).AsTask().GetAwaiter().GetResult();

    /// <summary>Reads the whole guest disk.</summary>
    public static byte[] ReadAll(BlockBackend backend)
    {
        var data = new byte[backend.Length];
        for (long pos = 0; pos < data.Length; pos += 1 << 20)
        {
            int n = (int)Math.Min(1 << 20, data.Length - pos);
            backend.ReadAsync(pos, data.AsMemory((int)pos, n)).AsTask().GetAwaiter().GetResult();
        }
        return data;
    }

    /// <summary>Asserts that <c>qemu-img check</c> finds no corruption and no leaks.</summary>
    public static void AssertClean(string path)
    {
        var r = QemuImg.Check(path, "qcow2");
        Assert.True(r.ExitCode == 0, $"qemu-img check exit {r.ExitCode}:\n{r.Stdout}\n{r.Stderr}");
    }

    /// <summary>What qemu-img reads from the image, as raw bytes.</summary>
    public static byte[] OracleRead(string path, TempDirectory dir)
    {
        string raw = dir.File($"oracle-{Guid.NewGuid():N}.raw");
        QemuImg.Run("convert", "-f", "qcow2", "-O", "raw", path, raw).EnsureSuccess("qemu-img convert");
        var bytes = File.ReadAllBytes(raw);
        File.Delete(raw);
        return bytes;
    }

    public static void Wait(this ValueTask task) => task.AsTask().GetAwaiter().GetResult();

    public static T Wait<T>(this ValueTask<T> task) => task.AsTask().GetAwaiter().GetResult();
}
