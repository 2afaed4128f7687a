using Block.Graph;
using Block.TestSupport;

namespace Block.Tests.Vvfat;

/// <summary>Host directory trees for the vvfat tests, and the two ways of turning one into a disk image.</summary>
internal static class VvfatTree
{
    /// <summary>Byte offset of the FAT volume in a hard disk image (sector 63).</summary>
    public const long HardDiskPartitionOffset = 63 * 512;

    /// <summary>
    /// A tree with what FAT makes hard: long names, names that collide in 8.3 (up to <c>~12</c>), upper, lower and
    /// mixed case, dropped characters, several dots, non-ASCII names, nested folders, an empty file, files of exactly one
    /// cluster and one byte more, a directory of <paramref name="manyFiles"/> long-named files (more than one cluster),
    /// an old modification time, and a file of <paramref name="bigFileBytes"/> pseudo-random bytes.
    /// </summary>
    /// <param name="root">The directory to fill (created).</param>
    /// <param name="bigFileBytes">Size of sub/big.bin; 0 leaves it out.</param>
    /// <param name="manyFiles">How many files go into <c>many/</c>.</param>
    /// <param name="mtoolsSafe">Leave out names mtools cannot give back (a character outside the BMP).</param>
    public static void Create(string root, int bigFileBytes, int manyFiles, bool mtoolsSafe = false)
    {
        Directory.CreateDirectory(root);
        Write(root, "a.txt", "hello\n");
        Write(root, "A very long file name.text", "one\n");
        Write(root, "A very long file name2.text", "two\n");
        Write(root, "A very long file name3.text", "three\n");
        Write(root, "MixedCase.Txt", "m\n");
        Write(root, "lower.TXT", "lower\n");
        Write(root, "Readme.md", "r1\n");
        Write(root, "README.MD", "r2\n");
        Write(root, ".hidden", "h\n");
        Write(root, "a.b.c", "abc\n");
        Write(root, "x[1],y.z", "x\n");
        Write(root, "  spaced out.txt", "s\n");
        Write(root, "Ünïcödé.txt", "u\n");
        if (!mtoolsSafe)
            Write(root, "emoji😀.txt", "e\n");
        Write(root, "abc.defg", "d\n");
        Write(root, "name.", "n\n");
        Write(root, "abcdefghijklm", "thirteen\n");
        Write(root, "a name of exactly twenty-six", "26\n");
        for (int i = 1; i <= 12; i++)
            Write(root, $"longfilename{i:D2}.txt", $"{i}\n");
        File.WriteAllBytes(Path.Combine(root, "empty"), []);
        string old = Write(root, "old.txt", "old\n");
        File.SetLastWriteTimeUtc(old, new DateTime(2010, 5, 6, 7, 8, 9, DateTimeKind.Utc));

        string folder = Path.Combine(root, "Long Folder Name");
        Directory.CreateDirectory(Path.Combine(folder, "nested deeper", "third"));
        Write(folder, "inner file with spaces.txt", "inner\n");
        Write(Path.Combine(folder, "nested deeper", "third"), "deep.txt", "deep\n");
        Directory.CreateDirectory(Path.Combine(root, "empty dir"));

        string sub = Path.Combine(root, "sub");
        Directory.CreateDirectory(sub);
        File.WriteAllBytes(Path.Combine(sub, "cluster.bin"), Patterns.Fill(8192, 0x5a));
        File.WriteAllBytes(Path.Combine(sub, "cluster-and-one.bin"), Patterns.Fill(8193, 0xa5));
        if (bigFileBytes > 0)
        {
            var big = new byte[bigFileBytes];
            new Random(18).NextBytes(big);
            File.WriteAllBytes(Path.Combine(sub, "big.bin"), big);
        }

        string many = Path.Combine(root, "many");
        Directory.CreateDirectory(many);
        for (int i = 1; i <= manyFiles; i++)
            Write(many, $"entry number {i:D3} of the many.txt", $"{i}\n");
    }

    private static string Write(string directory, string name, string content)
    {
        string path = Path.Combine(directory, name);
        File.WriteAllText(path, content);
        return path;
    }

    /// <summary><c>qemu-img convert -f vvfat -O raw</c> of <paramref name="filename"/> into <paramref name="output"/>.</summary>
    public static void ConvertWithQemu(string filename, string output) =>
        QemuImg.Run("convert", "-f", "vvfat", "-O", "raw", filename, output).EnsureSuccess($"qemu-img convert {filename}");

    /// <summary>Our disk for <paramref name="filename"/> (a <c>fat:</c> or <c>json:</c> name), read whole into <paramref name="output"/>.</summary>
    public static async Task ConvertWithBlockAsync(string filename, string output)
    {
        await using var graph = new BlockGraph();
        var backend = await graph.OpenImageAsync(filename, new ImageOpenOptions { Format = "vvfat", ReadOnly = true });
        long length = backend.Length;
        var buffer = new byte[1 << 20];
        await using var file = new FileStream(output, FileMode.Create, FileAccess.Write);
        for (long offset = 0; offset < length; offset += buffer.Length)
        {
            int n = (int)Math.Min(buffer.Length, length - offset);
            await backend.ReadAsync(offset, buffer.AsMemory(0, n));
            await file.WriteAsync(buffer.AsMemory(0, n));
        }
    }

    /// <summary>The byte ranges where two files differ, as "offset+length" strings (at most <paramref name="limit"/>).</summary>
    public static List<string> Differences(string a, string b, int limit = 20)
    {
        var ranges = new List<string>();
        using var fa = File.OpenRead(a);
        using var fb = File.OpenRead(b);
        if (fa.Length != fb.Length)
            ranges.Add($"lengths {fa.Length} and {fb.Length}");
        var ba = new byte[1 << 20];
        var bb = new byte[1 << 20];
        long offset = 0;
        long start = -1;
        while (ranges.Count < limit)
        {
            int na = fa.ReadAtLeast(ba, ba.Length, throwOnEndOfStream: false);
            int nb = fb.ReadAtLeast(bb, bb.Length, throwOnEndOfStream: false);
            int n = Math.Min(na, nb);
            if (n == 0)
                break;
            if (start < 0 && ba.AsSpan(0, n).SequenceEqual(bb.AsSpan(0, n)))
            {
                offset += n;
                continue;
            }
            for (int i = 0; i < n && ranges.Count < limit; i++)
            {
                bool differs = ba[i] != bb[i];
                if (differs && start < 0)
                    start = offset + i;
                else if (!differs && start >= 0)
                {
                    ranges.Add($"0x{start:x}+{offset + i - start}");
                    start = -1;
                }
            }
            offset += n;
        }
        if (start >= 0)
            ranges.Add($"0x{start:x}+{offset - start}");
        return ranges;
    }

    /// <summary>Asserts that <paramref name="extracted"/> holds exactly the files and directories of <paramref name="source"/>, with the same bytes.</summary>
    public static void AssertSameTree(string source, string extracted)
    {
        static List<string> Entries(string root) => Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(p => Path.GetRelativePath(root, p) + (Directory.Exists(p) ? "/" : string.Empty))
            .Order(StringComparer.Ordinal)
            .ToList();
        var expected = Entries(source);
        Assert.Equal(expected, Entries(extracted));
        foreach (string relative in expected.Where(e => !e.EndsWith('/')))
            Assert.True(File.ReadAllBytes(Path.Combine(source, relative)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(extracted, relative))), $"{relative} differs");
    }
}
