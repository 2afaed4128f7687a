using Block.Drivers.Blkdebug;
using Block.Drivers.File;
using Block.Drivers.Raw;
using Block.Options;
using Block.Qapi;

namespace Block.Tests;

/// <summary>Builds node trees over test files: raw over (optionally blkdebug over) file, with a chosen engine and cache mode.</summary>
internal static class TestImages
{
    public static void CreateZeroFile(string path, long size)
    {
        using var f = File.Create(path);
        f.SetLength(size);
    }

    public static BlockdevOptions RawOverFile(string path, BlockdevAioOptions aio = BlockdevAioOptions.Threads, bool direct = false,
        int align = 1, bool readOnly = false, BlockdevDiscardOptions discard = BlockdevDiscardOptions.Unmap, int maxTransfer = 0)
    {
        BlockdevOptions file = new BlockdevOptionsFile
        {
            Filename = path,
            Aio = aio,
            Cache = new BlockdevCacheOptions { Direct = direct },
        };
        if (align > 1 || maxTransfer > 0)
        {
            file = new BlockdevOptionsBlkdebug
            {
                Image = file,
                Align = align,
                MaxTransfer = maxTransfer > 0 ? maxTransfer : null,
            };
        }
        return new BlockdevOptionsRaw { File = file, ReadOnly = readOnly, Discard = discard };
    }
}
