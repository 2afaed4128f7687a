using System.Text;
using System.Text.Json.Nodes;
using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// Encrypted qcow2 images on both sides: the secret both tools are given, qemu-img and qemu-io with it, and the library
/// opening and creating with it. PBKDF2 runs with iter-time=10 so that unlocking stays fast.
/// </summary>
internal static class EncryptedImages
{
    public const string SecretId = "sec0";

    public const string Passphrase = "correct horse";

    public static string SecretObject(string passphrase = Passphrase) => $"secret,id={SecretId},data={passphrase}";

    /// <summary>The <c>--image-opts</c> string opening <paramref name="path"/> with the secret.</summary>
    public static string Opts(string path) => $"driver=qcow2,file.filename={path},encrypt.key-secret={SecretId}";

    /// <summary><c>-o</c> for a LUKS image with <paramref name="more"/> (comma-separated, may be empty).</summary>
    public static string LuksOptions(string more = "") =>
        $"encrypt.format=luks,encrypt.key-secret={SecretId},encrypt.iter-time=10" + (more.Length > 0 ? "," + more : "");

    /// <summary><c>-o</c> for a legacy AES image with <paramref name="more"/>.</summary>
    public static string AesOptions(string more = "") =>
        $"encrypt.format=aes,encrypt.key-secret={SecretId}" + (more.Length > 0 ? "," + more : "");

    public static void QemuCreate(string path, string size, string options, string passphrase = Passphrase) =>
        QemuImg.Create("qcow2", path, size, options, SecretObject(passphrase));

    /// <summary>qemu-io on the image with the secret; fails the test on any failure qemu-io reports.</summary>
    public static string QemuIo(string path, string[] commands, string passphrase = Passphrase)
    {
        var args = new List<string> { "--object", SecretObject(passphrase), "--image-opts" };
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }
        args.Add(Opts(path));
        var r = ProcessRunner.Run(TestSupport.QemuIo.Path, args).EnsureSuccess("qemu-io");
        Assert.True(!r.Stdout.Contains("failed", StringComparison.Ordinal) && r.Stderr.Length == 0, $"qemu-io reported a failure:\n{r.Stdout}\n{r.Stderr}");
        return r.Stdout;
    }

    /// <summary>Every guest byte as qemu-img reads it (<c>convert -O raw</c> with the secret).</summary>
    public static byte[] QemuReadAll(string path, string passphrase = Passphrase)
    {
        string raw = path + ".oracle.raw";
        QemuImg.Run("convert", "--object", SecretObject(passphrase), "--image-opts", Opts(path), "-O", "raw", raw).EnsureSuccess("qemu-img convert");
        try
        {
            return File.ReadAllBytes(raw);
        }
        finally
        {
            File.Delete(raw);
        }
    }

    /// <summary>Asserts <c>qemu-img check</c> (which needs the secret, as QEMU opens the image for I/O) finds nothing.</summary>
    public static void AssertQemuCheckClean(string path, string passphrase = Passphrase)
    {
        var r = QemuImg.Run("check", "--object", SecretObject(passphrase), "--image-opts", Opts(path));
        Assert.True(r.ExitCode == 0 && r.Stdout.Contains("No errors were found", StringComparison.Ordinal),
            $"qemu-img check {path} exited {r.ExitCode}:\n{r.Stdout}\n{r.Stderr}");
    }

    /// <summary>A graph knowing qcow2 with the secret registered under <see cref="SecretId"/>.</summary>
    public static BlockGraph NewGraph(string passphrase = Passphrase)
    {
        var graph = Qcow2Images.NewGraph();
        graph.Secrets.Add(SecretId, Encoding.UTF8.GetBytes(passphrase));
        return graph;
    }

    /// <summary>Opens <paramref name="path"/> with <c>encrypt.key-secret</c>, discards passed down as qemu-io does.</summary>
    public static ValueTask<BlockBackend> OpenAsync(BlockGraph graph, string path, bool readOnly = false, bool noIo = false) =>
        graph.OpenImageAsync(path, new ImageOpenOptions
        {
            Format = "qcow2",
            ReadOnly = readOnly,
            NoIo = noIo,
            Discard = BlockdevDiscardOptions.Unmap,
            ExtraOptions = new JsonObject { ["encrypt"] = new JsonObject { ["key-secret"] = SecretId } },
        });

    /// <summary>Creates <paramref name="path"/> with the library from <c>-o</c> text.</summary>
    public static ValueTask CreateAsync(BlockGraph graph, string path, long size, string options)
    {
        var dict = new Dictionary<string, string> { ["size"] = size.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        foreach (var pair in options.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = pair.IndexOf('=');
            dict[pair[..eq]] = pair[(eq + 1)..];
        }
        return graph.CreateImageAsync("qcow2", path, dict);
    }

    /// <summary>The full-disk-encryption extension's (offset, length), read from the header cluster.</summary>
    public static (long Offset, long Length) LuksArea(string path)
    {
        var header = File.ReadAllBytes(path).AsSpan(0, 4096);
        int at = header.IndexOf(new byte[] { 0x05, 0x37, 0xbe, 0x77 });
        Assert.True(at > 0, "no full-disk-encryption header extension");
        return ((long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(header[(at + 8)..]),
            (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(header[(at + 16)..]));
    }
}
