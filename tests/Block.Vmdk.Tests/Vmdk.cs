using Block.Drivers;
using Block.Graph;
using Block.TestSupport;
using Block.Vmdk.Info;

namespace Block.Vmdk.Tests;

/// <summary>A graph for one test; disposing it closes every node.</summary>
internal sealed class TestGraph(BlockGraph graph) : IDisposable
{
    public BlockGraph Graph { get; } = graph;

    public void Dispose() => Graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
}

/// <summary>Opening VMDK images through the library, and running <c>blk</c> in-process, for the tests.</summary>
internal static class Vmdk
{
    /// <summary>The subformats both tools create.</summary>
    public static readonly string[] Subformats = ["monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized"];

    /// <summary>The subformats whose grains can be rewritten in place.</summary>
    public static readonly string[] RewritableSubformats = ["monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"];

    public static TheoryData<string> All() => new(Subformats);

    public static TheoryData<string> Rewritable() => new(RewritableSubformats);

    /// <summary>A graph with the core drivers and vmdk, closed (with every image in it) when disposed.</summary>
    public static TestGraph Graph(ImageReferencePolicy? policy = null) => new(new BlockGraph(new BlockGraphOptions
    {
        Drivers = DriverRegistry.CreateDefault().AddVmdk(),
        ReferencePolicy = policy ?? ImageReferencePolicy.Allow,
    }));

    /// <summary>Opens <paramref name="path"/> as vmdk.</summary>
    public static BlockBackend Open(TestGraph graph, string path, bool readOnly = false) =>
        graph.Graph.OpenImageAsync(path, new ImageOpenOptions { Format = "vmdk", ReadOnly = readOnly }).AsTask().GetAwaiter().GetResult();

    /// <summary>The format-specific information of an open image.</summary>
    public static ImageInfoSpecificVmdk Info(BlockBackend backend) => (ImageInfoSpecificVmdk)backend.Root!.GetImageInfo().FormatSpecific!;

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="offset"/>.</summary>
    public static byte[] Read(BlockBackend backend, long offset, int length)
    {
        var buffer = new byte[length];
        backend.ReadAsync(offset, buffer).AsTask().GetAwaiter().GetResult();
        return buffer;
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    public static void Write(BlockBackend backend, long offset, byte[] data) =>
        backend.WriteAsync(offset, data).AsTask().GetAwaiter().GetResult();

    /// <summary>Runs <c>blk</c> in-process.</summary>
    public static ProcessResult Blk(params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int code = Block.Cli.Blk.RunAsync(args, stdout, stderr).GetAwaiter().GetResult();
        return new ProcessResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>qemu-img's stderr with its program name replaced by blk's.</summary>
    public static string AsBlk(string qemuText) => qemuText.Replace("qemu-img: ", "blk: ").Replace("qemu-io: ", "blk: ");

    /// <summary>Creates an image with qemu-img; throws on failure.</summary>
    public static void QemuCreate(string path, string size, string? options = null) => QemuImg.Create("vmdk", path, size, options);

    /// <summary>Runs qemu-io commands against a vmdk image and throws if one fails.</summary>
    public static string QemuIo(string path, params string[] commands) => TestSupport.QemuIo.RunChecked(path, "vmdk", commands);

    /// <summary><c>qemu-img check</c> of a vmdk image, which must be clean.</summary>
    public static void AssertCheckClean(string path)
    {
        var r = QemuImg.Check(path, "vmdk");
        Assert.True(r.ExitCode == 0, $"qemu-img check failed ({r.ExitCode}):\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains("No errors were found on the image.", r.Stdout);
    }
}
