using Block.Drivers;
using Block.Formats;
using Block.Graph;
using Block.Qapi;

namespace Block.Fuzz.Targets;

/// <summary>
/// A whole bochs file through the read-only driver: open (header checks, catalog bounds), reads at the start, across
/// the first extents and at the end (catalog entries, bitmaps, slots past the file), block status and info.
/// </summary>
public sealed class BochsImageTarget : IFuzzTarget
{
    private static readonly string s_directory = CreateDirectory();
    private static readonly BlockGraph s_graph = new(new BlockGraphOptions
    {
        Drivers = DriverRegistry.CreateDefault().AddFormats(),
        ReferencePolicy = ImageReferencePolicy.Deny,
    });

    /// <inheritdoc />
    public string Name => "bochs-image";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input)
    {
        string path = Path.Combine(s_directory, "input.bochs");
        File.WriteAllBytes(path, input.ToArray());
        RunAsync(path).AsTask().GetAwaiter().GetResult();
    }

    private static async ValueTask RunAsync(string path)
    {
        var backend = await s_graph.OpenImageAsync(path, new ImageOpenOptions { Format = "bochs", ReadOnly = true, Aio = BlockdevAioOptions.Inline }).ConfigureAwait(false);
        try
        {
            var buffer = new byte[65536];
            long length = backend.Length;
            var root = backend.Root!;
            await backend.ReadAsync(0, buffer.AsMemory(0, (int)Math.Min(buffer.Length, length))).ConfigureAwait(false);
            if (length >= 512)
                await backend.ReadAsync(length - 512, buffer.AsMemory(0, 512)).ConfigureAwait(false);
            if (length > 0)
                await root.GetBlockStatusAsync(0, Math.Min(length, 8 << 20)).ConfigureAwait(false);
            _ = root.GetImageInfo();
            if (length >= 1 << 20)
                await backend.ReadAsync(length / 2 & ~511L, buffer).ConfigureAwait(false);
        }
        finally
        {
            await backend.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static string CreateDirectory()
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string dir = Path.Combine(root, $"blk-fuzz-bochs-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(dir, recursive: true);
        return dir;
    }
}
