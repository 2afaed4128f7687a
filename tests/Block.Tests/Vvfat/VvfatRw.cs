using Block.Graph;
using Block.TestSupport;

namespace Block.Tests.Vvfat;

/// <summary>
/// Changes to a vvfat disk made the way a guest makes them: take the disk as presented, change a raw copy of it with
/// mtools, and write the sectors that differ, in disk order, one write a run, into the <c>rw</c> disk.
/// </summary>
internal static class VvfatRw
{
    /// <summary>A small tree: short and long names, a file of several clusters, a subdirectory with a file, an empty
    /// directory, an empty file.</summary>
    public static void CreateTree(string root)
    {
        Directory.CreateDirectory(root);
        File.WriteAllText(Path.Combine(root, "a.txt"), "hello\n");
        File.WriteAllText(Path.Combine(root, "b.txt"), "world\n");
        File.WriteAllText(Path.Combine(root, "A long file name.text"), "long\n");
        var big = new byte[20000];
        new Random(7).NextBytes(big);
        File.WriteAllBytes(Path.Combine(root, "big.bin"), big);
        File.WriteAllBytes(Path.Combine(root, "empty"), []);
        Directory.CreateDirectory(Path.Combine(root, "sub"));
        File.WriteAllText(Path.Combine(root, "sub", "c.txt"), "deep\n");
        Directory.CreateDirectory(Path.Combine(root, "empty dir"));
    }

    /// <summary>The runs of 512-byte sectors where <paramref name="before"/> and <paramref name="after"/> differ, with <paramref name="after"/>'s bytes.</summary>
    public static List<(long Offset, byte[] Data)> ChangedSectors(string before, string after)
    {
        byte[] a = File.ReadAllBytes(before);
        byte[] b = File.ReadAllBytes(after);
        Assert.Equal(a.Length, b.Length);
        var runs = new List<(long, byte[])>();
        const int sector = 512;
        for (int s = 0; s < a.Length / sector;)
        {
            if (a.AsSpan(s * sector, sector).SequenceEqual(b.AsSpan(s * sector, sector)))
            {
                s++;
                continue;
            }
            int end = s + 1;
            while (end < a.Length / sector && !a.AsSpan(end * sector, sector).SequenceEqual(b.AsSpan(end * sector, sector)))
                end++;
            runs.Add(((long)s * sector, b.AsSpan(s * sector, (end - s) * sector).ToArray()));
            s = end;
        }
        return runs;
    }

    /// <summary>Writes the runs into QEMU's <c>fat:rw:</c> disk with one qemu-io (<c>write -s</c> of each run's bytes).</summary>
    public static void WriteWithQemu(string filename, List<(long Offset, byte[] Data)> runs, TempDirectory scratch) =>
        QemuIo.Run(filename, "vvfat", [.. WriteCommands(runs, scratch, "run")]);

    /// <summary>qemu-io's (and <c>blk io</c>'s) <c>write -s FILE OFFSET LENGTH</c> for each run, its bytes in a scratch file.</summary>
    public static List<string> WriteCommands(List<(long Offset, byte[] Data)> runs, TempDirectory scratch, string name)
    {
        var commands = new List<string>();
        for (int i = 0; i < runs.Count; i++)
        {
            string data = scratch.File($"{name}{i}");
            File.WriteAllBytes(data, runs[i].Data);
            commands.Add($"write -s {data} {runs[i].Offset} {runs[i].Data.Length}");
        }
        return commands;
    }

    /// <summary>Opens our <c>rw</c> disk and writes the runs; the node driver, for a look at what it kept pending.</summary>
    public static async Task WriteWithBlockAsync(string filename, List<(long Offset, byte[] Data)> runs)
    {
        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync(filename, new ImageOpenOptions { Format = "vvfat" });
        foreach (var (offset, data) in runs)
            await backend.WriteAsync(offset, data);
    }

    /// <summary>Every entry under <paramref name="root"/> with its bytes, as "path/" or "path size sha256" lines.</summary>
    public static string Listing(string root) => string.Join('\n',
        Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(p => Directory.Exists(p)
                ? Path.GetRelativePath(root, p) + "/"
                : $"{Path.GetRelativePath(root, p)} {new FileInfo(p).Length} {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(p)))}")
            .Order(StringComparer.Ordinal));
}
