using System.Text;
using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk measure</c> prints what <c>qemu-img measure</c> prints, for disk sizes and for input images.</summary>
/// <remarks>Measuring only reads, so both tools read the same input files, made once for the class.</remarks>
public class MeasureOracleTests(MeasureOracleTests.Inputs inputs) : IClassFixture<MeasureOracleTests.Inputs>
{
    private static readonly string[] Sizes = ["0", "1", "512", "65535", "1G", "1T", "2199023255553"];

    /// <summary>
    /// qcow2 for a disk size over the geometries: every cluster size class, refcount widths 1, 16 and 64, standard and
    /// extended L2 entries, preallocation off, metadata and full. Differences are collected and reported together.
    /// </summary>
    [Theory]
    [InlineData("512")]
    [InlineData("4k")]
    [InlineData("64k")]
    [InlineData("2M")]
    public void Qcow2_sizes_for_a_disk_size_match_qemu_img(string clusterSize)
    {
        var differences = new StringBuilder();
        foreach (var size in Sizes)
        {
            foreach (var refcountBits in new[] { "1", "16", "64" })
            {
                foreach (var extendedL2 in new[] { "off", "on" })
                {
                    foreach (var prealloc in new[] { "off", "metadata", "full" })
                    {
                        string options = $"cluster_size={clusterSize},refcount_bits={refcountBits},extended_l2={extendedL2},preallocation={prealloc}";
                        CollectDifference(differences, "measure", "-O", "qcow2", "--size", size, "-o", options);
                    }
                }
            }
        }
        Assert.True(differences.Length == 0, differences.ToString());
    }

    /// <summary>raw and luks for disk sizes, including sizes that are not whole sectors and the largest one.</summary>
    [Theory]
    [InlineData("raw", null)]
    [InlineData("raw", "preallocation=full,nocow=on,extent_size_hint=1M")]
    [InlineData("luks", "key-secret=s0,iter-time=10")]
    [InlineData("luks", "key-secret=s0,iter-time=10,cipher-alg=aes-128")]
    [InlineData("luks", "key-secret=s0,iter-time=10,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv")]
    [InlineData("luks", "key-secret=s0,iter-time=10,cipher-alg=twofish-128,cipher-mode=ctr")]
    [InlineData("qcow2", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10")]
    [InlineData("qcow2", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,cluster_size=512")]
    [InlineData("qcow2", "encrypt.format=aes,encrypt.key-secret=s0")]
    [InlineData("qcow2", "encryption=on")]
    [InlineData("qcow2", "compat=0.10,lazy_refcounts=on,compression_type=zstd,data_file=x,backing_file=y")]
    public void Other_formats_and_encryption_match_qemu_img(string format, string? options)
    {
        // qemu-img times PBKDF for every LUKS measurement (over a second each), so LUKS gets fewer sizes.
        bool luks = format == "luks" || options?.Contains("format=luks", StringComparison.Ordinal) == true;
        var differences = new StringBuilder();
        foreach (var size in luks ? ["1", "9223372036854775807"] : Sizes.Append("9223372036854775807"))
        {
            var args = new List<string> { "measure", "--object", "secret,id=s0,data=123456", "-O", format, "--size", size };
            if (options != null)
                args.AddRange(["-o", options]);
            CollectDifference(differences, [.. args, "--output=json"]);
            if (!luks)
                CollectDifference(differences, [.. args]);
        }
        Assert.True(differences.Length == 0, differences.ToString());
    }

    /// <summary>
    /// Input images: what their chains hold decides "required" (data clusters counted whole, zeroes skipped), the
    /// disk size "fully allocated", and a version 3 qcow2 input's persistent bitmaps "bitmaps size".
    /// </summary>
    [Theory]
    [InlineData("empty.qcow2")]
    [InlineData("full.qcow2")]
    [InlineData("layout.qcow2")]
    [InlineData("sparse.raw")]
    [InlineData("odd.raw")]
    [InlineData("top.qcow2")]
    [InlineData("c4k.qcow2")]
    [InlineData("bitmaps.qcow2")]
    [InlineData("v2.qcow2")]
    public void Sizes_for_input_images_match_qemu_img(string input)
    {
        var differences = new StringBuilder();
        foreach (var target in new[]
        {
            "-O qcow2", "-O raw", "-O qcow2 -o cluster_size=512", "-O qcow2 -o cluster_size=2M,extended_l2=on",
            "-O qcow2 -o compat=0.10", "-O qcow2 -o preallocation=falloc", "-O qcow2 --output=json", "--output=json",
            "-O qcow2 -o refcount_bits=1,cluster_size=4k",
        })
        {
            CollectDifference(differences, ["measure", .. target.Split(' '), inputs.Dir.File(input)]);
        }
        Assert.True(differences.Length == 0, differences.ToString());
    }

    /// <summary>Inputs named with a format, image options or a snapshot.</summary>
    /// <remarks>LUKS targets get a short <c>iter-time</c>: qemu-img runs the PBKDF2 it measures for (2 s by default).</remarks>
    [Theory]
    [InlineData("-O", "qcow2", "-f", "raw", "@layout.qcow2")]
    [InlineData("-O", "qcow2", "-f", "qcow2", "@layout.qcow2")]
    [InlineData("-O", "qcow2", "-U", "@layout.qcow2")]
    [InlineData("-O", "qcow2", "--image-opts", "driver=qcow2,file.filename=@layout.qcow2")]
    [InlineData("-O", "qcow2", "-l", "s1", "@snap.qcow2")]
    [InlineData("-O", "qcow2", "-l", "1", "@snap.qcow2")]
    [InlineData("-O", "qcow2", "-l", "snapshot.name=s1", "@snap.qcow2")]
    [InlineData("-O", "qcow2", "-l", "snapshot.id=1", "@snap.qcow2")]
    [InlineData("-O", "qcow2", "-l", "snapshot.id=1,snapshot.name=s1", "@snap.qcow2")]
    [InlineData("-O", "qcow2", "-l", "snapshot.id=2", "@snap.qcow2")]
    [InlineData("-O", "qcow2", "-l", "snapshot.id=1,snapshot.name=other", "@snap.qcow2")]
    [InlineData("-O", "qcow2", "-l", "snapshot.bogus=1", "@snap.qcow2")]
    [InlineData("-O", "qcow2", "-l", "nosuch", "@snap.qcow2")]
    [InlineData("-l", "foo", "@sparse.raw")]
    [InlineData("-l", "foo", "-f", "raw", "@sparse.raw")]
    [InlineData("--object", "secret,id=s,data=x", "-O", "luks", "-o", "key-secret=s,iter-time=10", "@layout.qcow2")]
    [InlineData("--object", "secret,id=s,data=x", "-O", "luks", "-o", "key-secret=s,iter-time=10", "@odd.raw")]
    public void Named_inputs_match_qemu_img(params string[] args) => AssertSame(["measure", .. args]);

    /// <summary>Argument and option errors: qemu-img's messages and exit codes.</summary>
    [Theory]
    [InlineData("measure")]
    [InlineData("measure", "a", "b")]
    [InlineData("measure", "--size", "1G", "@empty.qcow2")]
    [InlineData("measure", "-f", "qcow2", "--size", "1G")]
    [InlineData("measure", "--image-opts", "--size", "1G")]
    [InlineData("measure", "-l", "x", "--size", "1G")]
    [InlineData("measure", "--image-opts", "-f", "qcow2", "@empty.qcow2")]
    [InlineData("measure", "-O", "qcow2", "-o", "size=2G")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "size=2G")]
    [InlineData("measure", "-O", "qcow2", "-o", "help", "--size", "1G")]
    [InlineData("measure", "-O", "raw", "-o", "help", "--size", "1G")]
    [InlineData("measure", "-O", "qcow2", "-o", "", "--size", "1G")]
    [InlineData("measure", "-O", "qcow2", "-o", "a,", "--size", "1G")]
    [InlineData("measure", "-O", "qcow2", "-o", "cluster_size=4k", "-o", "refcount_bits=1", "--size", "1G")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "foo=1")]
    [InlineData("measure", "-O", "raw", "--size", "1G", "-o", "foo=1")]
    [InlineData("measure", "-O", "bogus", "--size", "1G")]
    [InlineData("measure", "-O", "bogus", "@nonexist")]
    [InlineData("measure", "-O", "vmdk", "--size", "1G")]
    [InlineData("measure", "-O", "vmdk", "-o", "foo=1", "--size", "1G")]
    [InlineData("measure", "-O", "vmdk", "@empty.qcow2")]
    [InlineData("measure", "-O", "file", "--size", "1G")]
    [InlineData("measure", "-O", "host_device", "--size", "1G")]
    [InlineData("measure", "-O", "null-co", "--size", "1G")]
    [InlineData("measure", "-O", "blkdebug", "--size", "1G")]
    [InlineData("measure", "-O", "luks", "--size", "1G")]
    [InlineData("measure", "-O", "luks", "-o", "key-secret=s9", "--size", "1G")]
    [InlineData("measure", "-O", "luks", "-o", "key-secret=s9,cipher-alg=bogus", "--size", "1G")]
    [InlineData("measure", "-O", "luks", "-o", "iter-time=abc", "--size", "1G")]
    [InlineData("measure", "-O", "qcow2", "-o", "encrypt.format=luks", "--size", "1G")]
    [InlineData("measure", "-O", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=s9", "--size", "1G")]
    [InlineData("measure", "-O", "qcow2", "--size", "100T", "-o", "cluster_size=512,encrypt.format=luks")]
    [InlineData("measure", "--size", "1G", "--output=xml")]
    [InlineData("measure", "--size", "abc")]
    [InlineData("measure", "--size", "-1")]
    [InlineData("measure", "--size", "9E")]
    [InlineData("measure", "--size", "0x1k")]
    [InlineData("measure", "--size", "1.5k")]
    [InlineData("measure", "-f", "qcow2", "@sparse.raw")]
    [InlineData("measure", "-f", "bogus", "@sparse.raw")]
    [InlineData("measure", "@nonexist")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "extended_l2=on,cluster_size=4k")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "compat=bogus")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "compat=v2")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "compat=0.10,refcount_bits=8")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "compat=0.10,extended_l2=on")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "refcount_bits=3")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "refcount_bits=abc")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "cluster_size=abc")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "cluster_size=3k,refcount_bits=3")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "preallocation=bogus")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "refcount_bits=3,preallocation=bogus")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "preallocation=bogus,compat=bogus")]
    [InlineData("measure", "-O", "qcow2", "--size", "1G", "-o", "extended_l2=maybe")]
    [InlineData("measure", "-O", "qcow2", "--size", "128G", "-o", "cluster_size=512")]
    [InlineData("measure", "-O", "qcow2", "--size", "137438953984", "-o", "cluster_size=512")]
    [InlineData("measure", "-O", "qcow2", "--size", "2P")]
    [InlineData("measure", "-O", "qcow2", "--size", "2251799813685249")]
    [InlineData("measure", "-O", "qcow2", "--size", "2E", "-o", "cluster_size=2M")]
    [InlineData("measure", "-O", "qcow2", "--size", "2E", "-o", "cluster_size=2M,extended_l2=on")]
    public void Errors_and_limits_match_qemu_img(params string[] args) =>
        AssertSame([args[0], "--object", "secret,id=s0,data=123456", .. args[1..]]);

    /// <summary>
    /// A bad option prints getopt's complaint and the help text, and succeeds, as qemu-img measure does (the help text
    /// itself is blk's own).
    /// </summary>
    [Theory]
    [InlineData("-q", "measure: invalid option -- 'q'\n")]
    [InlineData("--bogus", "measure: unrecognized option '--bogus'\n")]
    [InlineData("-O", "measure: option requires an argument -- 'O'\n")]
    public void Bad_options_print_the_help(string option, string message)
    {
        var qemu = QemuImg.Run("measure", option);
        var blk = BlkRunner.Run("measure", option);
        Assert.Equal(0, qemu.ExitCode);
        Assert.Equal(0, blk.ExitCode);
        Assert.Equal(message, qemu.Stderr);
        Assert.Equal(message, blk.Stderr);
        Assert.StartsWith("blk version", blk.Stdout, StringComparison.Ordinal);
    }

    /// <summary>Runs both tools with <c>@name</c> naming a file of the inputs; same output and exit code.</summary>
    private void AssertSame(string[] args)
    {
        var differences = new StringBuilder();
        CollectDifference(differences, [.. args.Select(a => a.Replace("@", inputs.Dir.Path + "/", StringComparison.Ordinal))]);
        Assert.True(differences.Length == 0, differences.ToString());
    }

    private static void CollectDifference(StringBuilder differences, params string[] args)
    {
        var qemu = QemuImg.Run(args);
        var blk = BlkRunner.Run(args);
        string q = BlkRunner.Normalize(qemu.Stdout + qemu.Stderr) + qemu.ExitCode;
        string b = blk.Stdout + blk.Stderr + blk.ExitCode;
        if (q != b)
            differences.AppendLine($"{string.Join(' ', args)}:\n  qemu-img: {q.Replace("\n", " | ", StringComparison.Ordinal)}\n  blk:      {b.Replace("\n", " | ", StringComparison.Ordinal)}");
    }

    /// <summary>Inputs of every allocation pattern: empty, fully written, every kind of cluster, sparse and odd-sized raw
    /// files, a chain larger than its backing file, 4 KiB clusters with compressed data, bitmaps, version 2, snapshots.</summary>
    public sealed class Inputs : IDisposable
    {
        public Inputs()
        {
            Make(Dir);
        }

        public TempDirectory Dir { get; } = new();

        public void Dispose() => Dir.Dispose();
    }

    private static void Make(TempDirectory d)
    {
        QemuImg.Create("qcow2", d.File("empty.qcow2"), "64M");
        QemuImg.Create("qcow2", d.File("full.qcow2"), "64M");
        QemuIo.RunChecked(d.File("full.qcow2"), "qcow2", "write -P 1 0 64M");
        Qcow2Images.Layout(d.File("layout.qcow2"));
        QemuImg.Create("raw", d.File("sparse.raw"), "100M");
        QemuIo.RunChecked(d.File("sparse.raw"), "raw", "write -P 1 10M 100k", "write -P 2 50M 3k");
        File.WriteAllBytes(d.File("odd.raw"), Enumerable.Range(0, 5_000_000).Select(i => (byte)(i * 7)).ToArray());
        Qcow2Images.Chain(d);
        QemuImg.Create("qcow2", d.File("c4k.qcow2"), "10M", "cluster_size=4k");
        QemuIo.RunChecked(d.File("c4k.qcow2"), "qcow2", "write -P 1 4k 1k", "write -c -P 3 1M 64k");
        Qcow2Images.Layout(d.File("bitmaps.qcow2"));
        QemuImg.Run("bitmap", "--add", d.File("bitmaps.qcow2"), "b1").EnsureSuccess("qemu-img bitmap");
        QemuImg.Run("bitmap", "--add", "-g", "512", d.File("bitmaps.qcow2"), "averyveryverylongbitmapname").EnsureSuccess("qemu-img bitmap");
        QemuImg.Create("qcow2", d.File("v2.qcow2"), "64M", "compat=0.10");
        QemuImg.Create("qcow2", d.File("snap.qcow2"), "64M");
        QemuIo.RunChecked(d.File("snap.qcow2"), "qcow2", "write -P 1 0 1M");
        QemuImg.Run("snapshot", "-c", "s1", d.File("snap.qcow2")).EnsureSuccess("qemu-img snapshot");
        QemuIo.RunChecked(d.File("snap.qcow2"), "qcow2", "write -P 2 0 8M");
    }
}
