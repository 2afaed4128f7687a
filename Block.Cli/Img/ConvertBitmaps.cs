using Block.Bitmaps;
using Block.Cli.Common;
using Block.Graph;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk convert --bitmaps</c>: the persistent bitmaps of the one source become persistent bitmaps of the target,
/// with their granularity, enabled state and bits, after the data is copied (as qemu-img 7.2 copies them).
/// </summary>
/// <remarks>
/// QEMU walks a node's bitmaps newest first, so its messages name the last bitmap of the directory first; the copies
/// are created oldest first, which gives the target QEMU's directory order.
/// </remarks>
internal static class ConvertBitmaps
{
    /// <summary>Refuses what qemu-img refuses before creating the target; false after printing the error.</summary>
    public static bool CheckSources(CliContext cli, IReadOnlyList<BlockNode> sources, bool skipBroken)
    {
        if (sources.Count > 1)
            return Fail(cli, "Copying bitmaps only possible with single source");
        if (!sources[0].Impl.SupportsPersistentDirtyBitmaps)
            return Fail(cli, "Source lacks bitmap support");
        if (!skipBroken && NewestFirst(sources[0]).FirstOrDefault(b => b.Inconsistent) is { } broken)
        {
            return Fail(cli, $"Cannot copy inconsistent bitmap '{broken.Name}'\n"
                + "Try --skip-broken-bitmaps, or use 'qemu-img bitmap --remove' to delete it");
        }
        return true;
    }

    /// <summary>Creates and fills the target's bitmaps; returns the exit code.</summary>
    public static async Task<int> CopyAsync(CliContext cli, BlockNode source, BlockNode target, bool skipBroken)
    {
        // QEMU walks the source's bitmaps newest first and creates each copy as it goes, until a name the target
        // already has stops it; the target then stores them newest first, which is the source's order again.
        var copies = new List<DirtyBitmap>();
        string? conflict = null;
        foreach (var bitmap in NewestFirst(source))
        {
            if (skipBroken && bitmap.Inconsistent)
            {
                cli.Warning($"Skipping inconsistent bitmap '{bitmap.Name}'");
                continue;
            }
            if (target.FindDirtyBitmap(bitmap.Name!) != null)
            {
                conflict = bitmap.Name;
                break;
            }
            copies.Add(bitmap);
        }
        int exit = await CreateAsync(cli, source, target, copies);
        if (exit != 0 || conflict is null)
            return exit;
        cli.Error($"Failed to create bitmap {conflict}: Bitmap already exists: {conflict}");
        return 1;
    }

    private static async Task<int> CreateAsync(CliContext cli, BlockNode source, BlockNode target, List<DirtyBitmap> copies)
    {
        foreach (var bitmap in copies)
        {
            string name = bitmap.Name!;
            try
            {
                await target.AddDirtyBitmapAsync(name, bitmap.Granularity, persistent: true, disabled: !bitmap.Enabled);
            }
            catch (BlockException e)
            {
                cli.Error($"Failed to create bitmap {name}: {e.Message}");
                return 1;
            }
            try
            {
                target.MergeDirtyBitmaps(name, [(source, name)]);
            }
            catch (BlockException e)
            {
                cli.Error($"Failed to populate bitmap {name}: {e.Message}");
                return 1;
            }
        }
        return 0;
    }

    private static IEnumerable<DirtyBitmap> NewestFirst(BlockNode node) =>
        node.DirtyBitmaps.Where(b => b.Persistent && b.Name != null).Reverse();

    private static bool Fail(CliContext cli, string message)
    {
        cli.Error(message);
        return false;
    }
}
