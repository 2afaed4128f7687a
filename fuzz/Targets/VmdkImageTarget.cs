using Block.Drivers;
using Block.Graph;
using Block.Qapi;
using Block.Vmdk;

namespace Block.Fuzz.Targets;

/// <summary>
/// A whole VMDK file through the driver: open (header, footer, directories, embedded descriptor), read the start and
/// the end, and ask for block status. Extent and backing files may only come from an empty directory.
/// </summary>
public sealed class VmdkImageTarget : IFuzzTarget
{
    private static readonly string s_directory = CreateDirectory();
    private static readonly BlockGraph s_graph = new(new BlockGraphOptions
    {
        Drivers = DriverRegistry.CreateDefault().AddVmdk(),
        ReferencePolicy = ImageReferencePolicy.RestrictTo(s_directory),
    });

    /// <inheritdoc />
    public string Name => "vmdk-image";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input)
    {
        string path = Path.Combine(s_directory, "input.vmdk");
        File.WriteAllBytes(path, input.ToArray());
        RunAsync(path).AsTask().GetAwaiter().GetResult();
    }

    private static async ValueTask RunAsync(string path)
    {
        var backend = await s_graph.OpenImageAsync(path, new ImageOpenOptions
        {
            Format = "vmdk",
            ReadOnly = true,
            Aio = BlockdevAioOptions.Inline,
        }).ConfigureAwait(false);
        try
        {
            var buffer = new byte[65536];
            long length = backend.Length;
            await backend.ReadAsync(0, buffer.AsMemory(0, (int)Math.Min(buffer.Length, length))).ConfigureAwait(false);
            if (length >= 512)
                await backend.ReadAsync(length - 512, buffer.AsMemory(0, 512)).ConfigureAwait(false);
            if (length > 0)
                await backend.Root!.GetBlockStatusAsync(0, Math.Min(length, 1 << 20)).ConfigureAwait(false);
            _ = backend.Root!.GetImageInfo();
        }
        finally
        {
            await backend.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static string CreateDirectory()
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string dir = Path.Combine(root, $"blk-fuzz-vmdk-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(dir, recursive: true);
        return dir;
    }
}
