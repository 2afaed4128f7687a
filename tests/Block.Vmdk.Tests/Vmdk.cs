using Block.Drivers;
using Block.Graph;
using Block.TestSupport;
using Block.Vmdk.Info;

namespace Block.Vmdk.Tests;

/// <summary>Opening VMDK images through the library, and asking qemu-img about them, for the tests.</summary>
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
