using Block.Drivers;
using Block.Formats;
using Block.Graph;
using Block.Qapi;

namespace Block.Fuzz.Targets;

/// <summary>
/// A whole image file of one format of Block.Formats (vdi, vpc, qed, bochs…) through its driver: open (header checks,
/// table bounds), reads at the start, the middle and the end, block status, <c>check</c> where the format has one, then
/// (for a writable format) writes (in an allocated block, and one that allocates) and another <c>check</c>.
/// </summary>
/// <param name="format">The format's driver name; the target is named <c>format-image</c>.</param>
/// <param name="readOnly">The format is read-only in QEMU (bochs, cloop, dmg): opened read-only, never written.</param>
/// <param name="sparseInput">The input is a <see cref="SparseImageInput"/> (vhdx), not the file itself.</param>
public sealed class FormatImageTarget(string format, bool readOnly = false, bool sparseInput = false) : IFuzzTarget
{
    private static readonly string s_directory = CreateDirectory();
    private static readonly BlockGraph s_graph = new(new BlockGraphOptions
    {
        Drivers = DriverRegistry.CreateDefault().AddFormats(),
        ReferencePolicy = ImageReferencePolicy.Deny,
    });

    /// <inheritdoc />
    public string Name => format + "-image";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input)
    {
        string path = Path.Combine(s_directory, "input." + format);
        if (sparseInput)
            SparseImageInput.WriteTo(path, input);
        else
            File.WriteAllBytes(path, input.ToArray());
        RunAsync(path).AsTask().GetAwaiter().GetResult();
    }

    private async ValueTask RunAsync(string path)
    {
        var backend = await s_graph.OpenImageAsync(path, new ImageOpenOptions { Format = format, ReadOnly = readOnly, Aio = BlockdevAioOptions.Inline }).ConfigureAwait(false);
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
            await CheckAsync(root).ConfigureAwait(false);
            // Writes only on small disks: a hostile header may claim terabytes, and the fuzzer's files live in memory.
            if (!readOnly && length is >= 4096 and <= 64 << 20)
            {
                await backend.WriteAsync(0, buffer.AsMemory(0, 4096)).ConfigureAwait(false);
                await backend.WriteAsync(length / 2 & ~511L, buffer.AsMemory(0, 512)).ConfigureAwait(false);
                await CheckAsync(root).ConfigureAwait(false);
            }
        }
        finally
        {
            await backend.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Runs the format's check, if it has one (vpc has none, as in QEMU).</summary>
    private static async ValueTask CheckAsync(BlockNode root)
    {
        try
        {
            await root.Impl.CheckAsync(CheckRepair.None).ConfigureAwait(false);
        }
        catch (BlockException e) when (e.Errno == Errno.ENOTSUP)
        {
        }
    }

    private static string CreateDirectory()
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string dir = Path.Combine(root, $"blk-fuzz-formats-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(dir, recursive: true);
        return dir;
    }
}
