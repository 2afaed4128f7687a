using Block.Drivers;
using Block.Graph;

namespace Block.Bench;

/// <summary>
/// A fully allocated 1 GiB image of random data in one format, written once (in order, through the graph) and kept in
/// the page cache for the read benchmarks.
/// </summary>
/// <param name="format">The format driver's name (<c>vmdk</c>, <c>vdi</c>, <c>qed</c>).</param>
/// <param name="fileName">The file's name in the temporary directory.</param>
/// <param name="drivers">The drivers the format needs on top of the default registry.</param>
internal sealed class FormatBenchImage(string format, string fileName, Func<DriverRegistry, DriverRegistry> drivers)
{
    public const long Size = 1L << 30;

    /// <summary>The format driver's name.</summary>
    public string Format { get; } = format;

    /// <summary>Where the image lives.</summary>
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), fileName);

    /// <summary>A registry with the format's driver.</summary>
    public DriverRegistry Drivers() => drivers(DriverRegistry.CreateDefault());

    /// <summary>Writes the image unless it is already there; returns its path.</summary>
    public string Ensure()
    {
        var info = new FileInfo(Path);
        if (info.Exists && info.Length > Size)
            return Path;
        EnsureAsync().AsTask().GetAwaiter().GetResult();
        return Path;
    }

    private async ValueTask EnsureAsync()
    {
        await using var graph = new BlockGraph(new BlockGraphOptions { Drivers = Drivers() });
        await graph.CreateImageAsync(Format, Path, new Dictionary<string, string> { ["size"] = Size.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var backend = await graph.OpenImageAsync(Path, new ImageOpenOptions { Format = Format });
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
