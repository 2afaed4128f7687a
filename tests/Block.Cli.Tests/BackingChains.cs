using System.Text.RegularExpressions;
using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// Backing chains made by the oracle for the commit and rebase tests, and the checks that both sides left the same
/// images behind.
/// </summary>
internal static partial class BackingChains
{
    /// <summary>
    /// In <paramref name="dir"/>, with relative backing names:
    /// <list type="bullet">
    /// <item><c>base.qcow2</c> (64 MiB): 1 at 0–1 MiB, 7 at 10–12 MiB, 8 at 50 MiB (64 KiB);</item>
    /// <item><c>mid.qcow2</c> (64 MiB, over base): 2 at 512 KiB–1.5 MiB, a zero cluster over base's data at 10 MiB;</item>
    /// <item><c>top.qcow2</c> (128 MiB, over mid, larger than both): a zero cluster at 0, 3 at 1 MiB (64 KiB), 4 at 100 MiB (4 KiB);</item>
    /// <item><c>other.qcow2</c> (64 MiB): 9 at 0–3 MiB, 1 at 10–11 MiB;</item>
    /// <item><c>raw.img</c> (32 MiB raw): 5 at 0–256 KiB;</item>
    /// <item><c>lone.qcow2</c> (64 MiB, no backing file): 6 at 20 MiB (64 KiB).</item>
    /// </list>
    /// </summary>
    public static void Build(TempDirectory dir)
    {
        QemuImg.Create("qcow2", dir.File("base.qcow2"), "64M");
        QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", "write -P 1 0 1M", "write -P 7 10M 2M", "write -P 8 50M 64k");
        Overlay(dir, "mid.qcow2", "base.qcow2", null);
        QemuIo.RunChecked(dir.File("mid.qcow2"), "qcow2", "write -P 2 512k 1M", "write -z 10M 64k");
        Overlay(dir, "top.qcow2", "mid.qcow2", "128M");
        QemuIo.RunChecked(dir.File("top.qcow2"), "qcow2", "write -z 0 64k", "write -P 3 1M 64k", "write -P 4 100M 4k");
        QemuImg.Create("qcow2", dir.File("other.qcow2"), "64M");
        QemuIo.RunChecked(dir.File("other.qcow2"), "qcow2", "write -P 9 0 3M", "write -P 1 10M 1M");
        QemuImg.Create("raw", dir.File("raw.img"), "32M");
        QemuIo.RunChecked(dir.File("raw.img"), "raw", "write -P 5 0 256k");
        QemuImg.Create("qcow2", dir.File("lone.qcow2"), "64M");
        QemuIo.RunChecked(dir.File("lone.qcow2"), "qcow2", "write -P 6 20M 64k");
    }

    /// <summary>Creates <paramref name="name"/> over <paramref name="backing"/> (qcow2), of <paramref name="size"/> or the backing file's.</summary>
    public static void Overlay(TempDirectory dir, string name, string backing, string? size, string backingFormat = "qcow2", string format = "qcow2")
    {
        List<string> args = ["create", "-q", "-f", format, "-b", backing, "-F", backingFormat, dir.File(name)];
        if (size != null)
            args.Add(size);
        QemuImg.Run([.. args]).EnsureSuccess("qemu-img create");
    }

    /// <summary>The qcow2 images <see cref="Build"/> makes.</summary>
    public static readonly string[] Qcow2Names = ["base.qcow2", "mid.qcow2", "top.qcow2", "other.qcow2", "lone.qcow2"];

    /// <summary>
    /// Asserts that QEMU sees each image alike on both sides: <c>check</c> clean with as many clusters in use,
    /// <c>info</c> the same (disk usage left out), the same allocation through the chain (<c>map</c>, host offsets left
    /// out), and the same content (<c>compare</c>). Where the clusters lie in the file may differ: blk does not reuse a
    /// cluster freed during the run before the next flush, and its qcow2 empties an image by freeing its clusters where
    /// QEMU rebuilds it (so <c>check</c>'s fragmentation and image end offset are not compared).
    /// </summary>
    public static void AssertSameImages(SideBySide s, params string[] names)
    {
        foreach (var name in names)
        {
            var check = s.Oracle("check", "-f", "qcow2", "@" + name);
            Assert.Equal(0, check.Qemu.ExitCode);
            Assert.Equal(0, check.Blk.ExitCode);
            Assert.Equal(CheckSummary(check.Qemu.Stdout), CheckSummary(check.Blk.Stdout));
            var info = s.Oracle("info", "--output=json", "-f", "qcow2", "@" + name);
            Assert.Equal(WithoutActualSize(info.Qemu.Stdout), WithoutActualSize(info.Blk.Stdout));
            var map = s.Oracle("map", "--output=json", "-f", "qcow2", "@" + name);
            Assert.Equal(0, map.Qemu.ExitCode);
            Assert.Equal(Allocation(map.Qemu.Stdout), Allocation(map.Blk.Stdout));
            Assert.Equal(0, QemuImg.Compare(s.Qemu(name), s.Blk(name), "qcow2", "qcow2"));
        }
    }

    /// <summary>The verdict and the count of clusters in use from <c>qemu-img check</c>'s output.</summary>
    private static string CheckSummary(string stdout) =>
        string.Join('\n', stdout.Split('\n').Where(l => !l.StartsWith("Image end offset", StringComparison.Ordinal)).Select(l => l.Split(" = ")[0]));

    /// <summary>
    /// The ranges of a <c>map --output=json</c> without host offsets, neighbours of the same kind merged (QEMU splits a
    /// range where the host offsets stop being contiguous, which depends on allocation order).
    /// </summary>
    public static string Allocation(string mapJson)
    {
        var merged = new List<(long Start, long Length, string Kind)>();
        foreach (var entry in System.Text.Json.Nodes.JsonNode.Parse(mapJson)!.AsArray())
        {
            var o = entry!.AsObject();
            string kind = $"depth {o["depth"]} present {o["present"]} zero {o["zero"]} data {o["data"]}";
            long start = (long)o["start"]!, length = (long)o["length"]!;
            if (merged.Count > 0 && merged[^1].Kind == kind && merged[^1].Start + merged[^1].Length == start)
                merged[^1] = (merged[^1].Start, merged[^1].Length + length, kind);
            else
                merged.Add((start, length, kind));
        }
        return string.Join('\n', merged.Select(m => $"{m.Start} +{m.Length}: {m.Kind}"));
    }

    private static string WithoutActualSize(string json) =>
        string.Join('\n', json.Split('\n').Where(l => !l.Contains("\"actual-size\"", StringComparison.Ordinal)));

    /// <summary>Asserts that every file of <see cref="Build"/> has the same bytes on both sides.</summary>
    public static void AssertSameBytes(SideBySide s)
    {
        foreach (var name in Qcow2Names.Append("raw.img"))
            s.AssertSameBytes(name);
    }

    /// <summary>
    /// The <c>-p</c> meter lines of a run that polls a job (how often it prints depends on timing) reduced to their first
    /// and last value.
    /// </summary>
    public static string CollapsedProgress(string stdout) => Meter().Replace(stdout, m =>
    {
        var values = m.Value.Split('\r', StringSplitOptions.RemoveEmptyEntries);
        return values[0] + "\r" + (values.Length > 1 ? "…" + values[^1] + "\r" : string.Empty);
    });

    [GeneratedRegex(@"(    \(\d+\.\d\d/100%\)\r)+")]
    private static partial Regex Meter();
}
