using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Drivers.Vvfat;

/// <summary>QEMU's <c>fat:[floppy:][rw:][12|16|32:]DIR</c> file names, and the <c>json:</c> name QEMU gives a vvfat node.</summary>
public static class VvfatFilename
{
    /// <summary>The file-name prefix that selects the driver.</summary>
    public const string Prefix = "fat";

    /// <summary>Parses a <c>fat:</c> file name.</summary>
    /// <remarks>
    /// As QEMU 7.2 reads them: the flags are found anywhere in the name as <c>:floppy:</c>, <c>:rw:</c>, <c>:12:</c>,
    /// <c>:16:</c>, <c>:32:</c>; the directory is what follows the last colon, unless that colon follows a single
    /// letter after another colon (a DOS drive, <c>fat:c:dir</c>), which then starts the directory. So
    /// <c>fat:13:dir</c> is directory <c>dir</c> and <c>fat:s:extra</c> is directory <c>s:extra</c>.
    /// </remarks>
    /// <exception cref="BlockOptionsException">The name does not start with <c>fat:</c>.</exception>
    public static BlockdevOptionsVvfat Parse(string filename)
    {
        ArgumentNullException.ThrowIfNull(filename);
        if (!filename.StartsWith(Prefix + ":", StringComparison.Ordinal))
            throw new BlockOptionsException($"vvfat file names start with 'fat:': '{filename}'");
        long fatType = filename.Contains(":32:", StringComparison.Ordinal) ? 32
            : filename.Contains(":16:", StringComparison.Ordinal) ? 16
            : filename.Contains(":12:", StringComparison.Ordinal) ? 12
            : 0;
        bool floppy = filename.Contains(":floppy:", StringComparison.Ordinal);
        bool rw = filename.Contains(":rw:", StringComparison.Ordinal);
        int last = filename.LastIndexOf(':');
        int start = last >= 2 && filename[last - 2] == ':' && char.IsAsciiLetter(filename[last - 1]) ? last - 1 : last + 1;
        return new BlockdevOptionsVvfat
        {
            Dir = filename[start..],
            FatType = fatType,
            Floppy = floppy,
            Rw = rw,
            FromFilename = true,
        };
    }

    /// <summary>The node's file name as QEMU shows it: <c>json:{…}</c> with the members in QEMU's order.</summary>
    public static string JsonName(BlockdevOptionsVvfat options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var obj = new JsonObject();
        if (options.FromFilename || options.FatType is not null)
            obj["fat-type"] = options.FatType ?? 0;
        obj["dir"] = options.Dir;
        obj["driver"] = "vvfat";
        if (options.FromFilename || options.Floppy is not null)
            obj["floppy"] = options.Floppy ?? false;
        if (options.Label is not null)
            obj["label"] = options.Label;
        if (options.FromFilename || options.Rw is not null)
            obj["rw"] = options.Rw ?? false;
        return "json:" + QemuJson.Compact(obj);
    }
}
