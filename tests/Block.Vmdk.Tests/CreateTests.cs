using System.Text;
using System.Text.RegularExpressions;
using Block.TestSupport;

namespace Block.Vmdk.Tests;

/// <summary><c>blk create -f vmdk</c> lays images out as <c>qemu-img create -f vmdk</c> 7.2 does, option for option.</summary>
public partial class CreateTests
{
    public static TheoryData<string, string> Layouts()
    {
        var data = new TheoryData<string, string>();
        foreach (string subformat in Vmdk.Subformats)
        {
            data.Add($"subformat={subformat}", "5M");
            data.Add($"subformat={subformat}", "3G");
        }
        data.Add("subformat=monolithicSparse", "0");
        data.Add("subformat=twoGbMaxExtentFlat", "0");
        data.Add("subformat=monolithicFlat", "1000");
        data.Add("subformat=monolithicSparse", "100000");
        data.Add("adapter_type=lsilogic", "100M");
        data.Add("adapter_type=buslogic,hwversion=7", "1G");
        data.Add("adapter_type=legacyESX,toolsversion=123", "10M");
        data.Add("compat6=on", "10M");
        data.Add("compat6=on,hwversion=undefined", "10M");
        data.Add("zeroed_grain=on", "10M");
        data.Add("zeroed_grain=on,subformat=streamOptimized", "10M");
        data.Add("zeroed_grain=on,subformat=twoGbMaxExtentSparse", "3G");
        data.Add("subformat=monolithicSparse", "100G");
        return data;
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Files_match_qemu_img_byte_for_byte_apart_from_the_cid(string options, string size)
    {
        using var ours = new TempDirectory();
        using var theirs = new TempDirectory();
        var q = QemuImg.Run("create", "-f", "vmdk", "-o", options, Path.Combine(theirs.Path, "disk.vmdk"), size);
        var b = BlkRunner.Run("create", "-f", "vmdk", "-o", options, Path.Combine(ours.Path, "disk.vmdk"), size);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(q.Stdout.Replace(theirs.Path, ours.Path), b.Stdout);

        var theirFiles = Directory.GetFiles(theirs.Path).Select(Path.GetFileName).Order().ToArray();
        var ourFiles = Directory.GetFiles(ours.Path).Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(theirFiles, ourFiles);
        foreach (var name in theirFiles)
        {
            string a = Path.Combine(theirs.Path, name!), c = Path.Combine(ours.Path, name!);
            // Descriptor files differ in length when the random CIDs have different numbers of hex digits.
            if (new FileInfo(a).Length > 4096)
                Assert.Equal(new FileInfo(a).Length, new FileInfo(c).Length);
            Assert.Equal(WithoutCid(a), WithoutCid(c));
        }
        string ourImage = Path.Combine(ours.Path, "disk.vmdk"), theirImage = Path.Combine(theirs.Path, "disk.vmdk");
        if (size != "0")
        {
            Assert.Equal(QemuImg.MapJsonText(theirImage, "vmdk"), QemuImg.MapJsonText(ourImage, "vmdk"));
            Assert.Equal(CidFree(QemuImg.InfoJsonText(theirImage, "vmdk").Replace(theirs.Path, ours.Path)), CidFree(QemuImg.InfoJsonText(ourImage, "vmdk")));
            Vmdk.AssertCheckClean(ourImage);
        }
    }

    [Theory]
    [InlineData("adapter_type=foo")]
    [InlineData("subformat=vmfs")]
    [InlineData("subformat=foo")]
    [InlineData("compat6=on,hwversion=7")]
    [InlineData("subformat=monolithicFlat,zeroed_grain=on")]
    [InlineData("subformat=twoGbMaxExtentFlat,backing_file=base.vmdk,backing_fmt=vmdk")]
    [InlineData("backing_file=base.vmdk,backing_fmt=raw")]
    [InlineData("cluster_size=64k")]
    [InlineData("help")]
    public void Option_errors_and_help_match_qemu_img(string options)
    {
        using var dir = new TempDirectory();
        Vmdk.QemuCreate(dir.File("base.vmdk"), "1M");
        var q = QemuImg.Run(["create", "-f", "vmdk", "-o", options, "x.vmdk", "1M"], dir.Path);
        var b = InDirectory(dir, ["create", "-f", "vmdk", "-o", options, "x.vmdk", "1M"]);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(q.Stdout, b.Stdout);
        Assert.Equal(BlkRunner.AsBlk(q.Stderr), b.Stderr);
    }

    [Theory]
    [InlineData("-b", "base.vmdk", "-F", "vmdk", "child.vmdk")]
    [InlineData("-b", "base.vmdk", "-F", "vmdk", "child.vmdk", "2M")]
    [InlineData("-b", "base.vmdk", "-F", "vmdk", "child.vmdk", "512k")]
    [InlineData("-b", "base.vmdk", "child.vmdk")]
    [InlineData("-b", "missing.vmdk", "-F", "vmdk", "child.vmdk")]
    [InlineData("-u", "-b", "base.vmdk", "child.vmdk", "1M")]
    [InlineData("-o", "backing_file=base.vmdk,backing_fmt=vmdk,subformat=streamOptimized", "child.vmdk")]
    public void Children_of_a_vmdk_parent_match_qemu_img(params string[] args)
    {
        using var ours = new TempDirectory();
        using var theirs = new TempDirectory();
        foreach (var d in new[] { ours, theirs })
        {
            Vmdk.QemuCreate(d.File("base.vmdk"), "1M");
            Vmdk.QemuIo(d.File("base.vmdk"), "write -P 0x11 0 1M");
        }
        var q = QemuImg.Run(["create", "-f", "vmdk", .. args], theirs.Path);
        var b = InDirectory(ours, ["create", "-f", "vmdk", .. args]);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(q.Stdout, b.Stdout);
        Assert.Equal(BlkRunner.AsBlk(q.Stderr), b.Stderr);
        if (q.ExitCode != 0)
            return;
        Assert.Equal(WithoutCid(theirs.File("child.vmdk")), WithoutCid(ours.File("child.vmdk")));
        var info = BlkRunner.Run("info", "--output=json", ours.File("child.vmdk"));
        Assert.Contains($"\"parent-cid\": {ParentCidOf(ours.File("base.vmdk"))}", info.Stdout);
        Vmdk.QemuIo(ours.File("child.vmdk"), "read -P 0x11 0 512k");
    }

    private static long ParentCidOf(string image) =>
        QemuImg.Info(image, "vmdk")["format-specific"]!["data"]!["cid"]!.GetValue<long>();

    /// <summary>Runs blk with relative names resolved in <paramref name="dir"/>, and prints them back relative.</summary>
    private static ProcessResult InDirectory(TempDirectory dir, string[] args)
    {
        string previous = Environment.CurrentDirectory;
        Environment.CurrentDirectory = dir.Path;
        try
        {
            return BlkRunner.Run(args);
        }
        finally
        {
            Environment.CurrentDirectory = previous;
        }
    }

    /// <summary>The file's bytes as text with the CID values (own and parent's) blanked and NUL padding dropped (a CID's length varies).</summary>
    /// <remarks>Flat extents of gigabytes are compared by their first MiB (the rest is a hole in both).</remarks>
    private static string WithoutCid(string path)
    {
        using var f = File.OpenRead(path);
        var bytes = new byte[(int)Math.Min(f.Length, 1 << 20)];
        f.ReadExactly(bytes);
        return Cid().Replace(Encoding.Latin1.GetString(bytes), "CID=X").Replace("\0", string.Empty, StringComparison.Ordinal);
    }

    private static string CidFree(string infoJson) => JsonCid().Replace(infoJson, "\"cid\": X");

    [GeneratedRegex(@"CID=[0-9a-f]+")]
    private static partial Regex Cid();

    [GeneratedRegex(@"""cid"": \d+")]
    private static partial Regex JsonCid();
}
