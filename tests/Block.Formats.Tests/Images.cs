using Block.Drivers;
using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Formats.Tests;

/// <summary>Opening images of this package's formats through the library, and comparing blk with qemu-img, for the tests.</summary>
internal static class Images
{
    /// <summary>A graph with the core drivers and this package's formats, closed (with every image in it) when disposed.</summary>
    public static TestGraph Graph() => new(new BlockGraph(new BlockGraphOptions
    {
        Drivers = DriverRegistry.CreateDefault().AddFormats(),
        ReferencePolicy = ImageReferencePolicy.Allow,
    }));

    /// <summary>Opens <paramref name="path"/> as <paramref name="format"/>.</summary>
    public static BlockBackend Open(TestGraph graph, string path, string format, bool readOnly = false, BlockdevAioOptions? aio = null) =>
        graph.Graph.OpenImageAsync(path, new ImageOpenOptions { Format = format, ReadOnly = readOnly, Aio = aio })
            .AsTask().GetAwaiter().GetResult();

    /// <summary>Runs the same qemu-img command with qemu-img and with blk and asserts the same stdout, stderr and exit code.</summary>
    public static void AssertSameOutput(params string[] args)
    {
        var q = QemuImg.Run(args);
        var b = BlkRunner.Run(args);
        Assert.Equal(q.Stdout, b.Stdout);
        Assert.Equal(BlkRunner.AsBlk(q.Stderr), b.Stderr);
        Assert.Equal(q.ExitCode, b.ExitCode);
    }

    /// <summary>The image's content as qemu-img sees it.</summary>
    public static byte[] QemuRaw(TempDirectory dir, string image, string format)
    {
        string raw = dir.File(Path.GetFileNameWithoutExtension(image) + "-" + Guid.NewGuid().ToString("N")[..6] + ".raw");
        QemuImg.Run("convert", "-f", format, "-O", "raw", image, raw).EnsureSuccess("qemu-img convert");
        var bytes = File.ReadAllBytes(raw);
        File.Delete(raw);
        return bytes;
    }

    /// <summary>Runs qemu-io commands against an image and throws if one fails.</summary>
    public static string QemuIo(string path, string format, params string[] commands) => TestSupport.QemuIo.RunChecked(path, format, commands);

    /// <summary>Runs <c>blk io</c> commands against an image and throws if one fails.</summary>
    public static void BlkIo(string path, string format, params string[] commands)
    {
        var args = new List<string> { "io", "-f", format };
        foreach (var c in commands)
            args.AddRange(["-c", c]);
        args.Add(path);
        var r = BlkRunner.Run([.. args]);
        Assert.True(r.ExitCode == 0 && !r.Stdout.Contains("failed", StringComparison.Ordinal), r.Stdout + r.Stderr);
    }

    /// <summary><c>qemu-img check</c> of an image, which must be clean.</summary>
    public static void AssertCheckClean(string path, string format)
    {
        var r = QemuImg.Check(path, format);
        Assert.True(r.ExitCode == 0, $"qemu-img check failed ({r.ExitCode}):\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains("No errors were found on the image.", r.Stdout);
    }
}
