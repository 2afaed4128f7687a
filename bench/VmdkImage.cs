using Block.Drivers;
using Block.Graph;
using Block.Vmdk;

namespace Block.Bench;

/// <summary>A fully allocated 1 GiB monolithicSparse VMDK of random data, written once (grains in order) and kept in the page cache.</summary>
internal static class VmdkImage
{
    public const long Size = 1L << 30;

    public static string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "blk-bench-1g-sparse.vmdk");

    public static string Ensure()
    {
        var info = new FileInfo(Path);
        if (info.Exists && info.Length > Size)
            return Path;
        EnsureAsync().AsTask().GetAwaiter().GetResult();
        return Path;
    }

    private static async ValueTask EnsureAsync()
    {
        await using var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddVmdk() });
        await graph.CreateImageAsync("vmdk", Path, new Dictionary<string, string> { ["size"] = Size.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var backend = await graph.OpenImageAsync(Path, new ImageOpenOptions { Format = "vmdk" });
        var chunk = new byte[4 << 20];
        var rng = new Random(42);
        for (long offset = 0; offset < Size; offset += chunk.Length)
        {
            rng.NextBytes(chunk);
            await backend.WriteAsync(offset, chunk);
        }
        await backend.FlushAsync();
    }
}
