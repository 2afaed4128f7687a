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


    /// <summary>Opens <paramref name="path"/> as <paramref name="format"/>; read-write unless asked otherwise.</summary>
    public static ValueTask<BlockBackend> OpenAsync(BlockGraph graph, string path, bool readOnly = false, string format = "qcow2") =>
        graph.OpenImageAsync(path, new ImageOpenOptions { Format = format, ReadOnly = readOnly, Discard = BlockdevDiscardOptions.Unmap });

    /// <summary>Every byte of the backend's device, read in 1 MiB requests.</summary>
    public static async Task<byte[]> ReadAllAsync(BlockBackend backend)
    {
        var all = new byte[backend.Length];
        for (int pos = 0; pos < all.Length; pos += 1 << 20)
            await backend.ReadAsync(pos, all.AsMemory(pos, Math.Min(1 << 20, all.Length - pos)));
        return all;
    }

    /// <summary>Opens read-only with the library and reads everything.</summary>
    public static async Task<byte[]> ReadWithLibraryAsync(string path, string format = "qcow2")
    {
        await using var graph = NewGraph();
        var backend = await OpenAsync(graph, path, readOnly: true, format);
        return await ReadAllAsync(backend);
    }

    /// <summary>What qemu-img says the image holds: <c>qemu-img convert -O raw</c>, read back.</summary>
    public static byte[] ReadWithQemu(string path, string format = "qcow2")
    {
        string raw = path + ".oracle.raw";
        QemuImg.Run("convert", "-f", format, "-O", "raw", path, raw).EnsureSuccess("qemu-img convert");
        try
        {
            return File.ReadAllBytes(raw);
        }
        finally
        {
            File.Delete(raw);
        }
    }

    /// <summary>Asserts <c>qemu-img check</c> finds nothing: exit 0, no leaks, no corruptions.</summary>
    public static void AssertCheckClean(string path)
    {
        var r = QemuImg.Check(path, "qcow2");
        Assert.True(r.ExitCode == 0 && r.Stdout.Contains("No errors were found", StringComparison.Ordinal),
            $"qemu-img check {path} exited {r.ExitCode}:\n{r.Stdout}\n{r.Stderr}");
    }

    /// <summary><c>qemu-img check --output=json</c>, parsed (whatever its exit code).</summary>
    public static System.Text.Json.Nodes.JsonObject CheckJson(string path)
    {
        var r = QemuImg.Run("check", "--output=json", "-f", "qcow2", path);
        return (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(r.Stdout)!;
    }

    /// <summary>Asserts two images' bytes are equal, reporting the first difference.</summary>
    public static void AssertSameBytes(ReadOnlyMemory<byte> expectedBytes, ReadOnlyMemory<byte> actualBytes, string what)
    {
        var expected = expectedBytes.Span;
        var actual = actualBytes.Span;
        Assert.True(expected.Length == actual.Length, $"{what}: length {actual.Length}, expected {expected.Length}");
        int i = expected.CommonPrefixLength(actual);
        Assert.True(i == expected.Length, $"{what}: first difference at offset {i} (0x{i:x}): 0x{(i < actual.Length ? actual[i] : 0):x2}, expected 0x{(i < expected.Length ? expected[i] : 0):x2}");
    }
}
