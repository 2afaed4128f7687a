using Block.Drivers;
using Block.Formats;
using Block.Graph;

namespace Block.Bench;

/// <summary>A fully allocated 1 GiB dynamic VDI of random data, written once (blocks in order) and kept in the page cache.</summary>
internal static class VdiImage
{
    public const long Size = 1L << 30;

    public static string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "blk-bench-1g.vdi");

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
        await using var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddFormats() });
        await graph.CreateImageAsync("vdi", Path, new Dictionary<string, string> { ["size"] = Size.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var backend = await graph.OpenImageAsync(Path, new ImageOpenOptions { Format = "vdi" });
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
