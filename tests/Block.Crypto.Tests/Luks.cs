using Block.TestSupport;

namespace Block.Crypto.Tests;

/// <summary>
/// What the LUKS oracle tests share: the secret both tools are given, the option strings that open an image with it,
/// and image creation by either tool with iter-time=10 so PBKDF2 stays fast.
/// </summary>
internal static class Luks
{
    public const string Passphrase = "123456";

    public const string SecretObject = "secret,id=s0,data=" + Passphrase;

    /// <summary>The <c>--image-opts</c> string opening <paramref name="path"/> as luks with the secret.</summary>
    public static string Opts(string path) => $"driver=luks,key-secret=s0,file.filename={path}";

    /// <summary><c>-o</c> for creating with <paramref name="suite"/> (comma-separated create options, may be empty).</summary>
    public static string CreateOptions(string suite) => "key-secret=s0,iter-time=10" + (suite.Length > 0 ? "," + suite : "");

    public static void QemuCreate(string path, string suite, string size = "16M") =>
        QemuImg.Create("luks", path, size, CreateOptions(suite), SecretObject);

    public static void BlkCreate(string path, string suite, string size = "16M") =>
        BlkRunner.Run("create", "-q", "-f", "luks", "--object", SecretObject, "-o", CreateOptions(suite), path, size).EnsureSuccess("blk create");

    /// <summary>qemu-io on the image with the secret; fails the test if qemu-io reports a failure.</summary>
    public static string QemuIo(string path, params string[] commands)
    {
        var args = new List<string> { "--object", SecretObject, "--image-opts" };
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }
        args.Add(Opts(path));
        var r = ProcessRunner.Run(TestSupport.QemuIo.Path, args).EnsureSuccess("qemu-io");
        if (r.Stdout.Contains("failed", StringComparison.Ordinal) || r.Stderr.Length > 0)
            throw new InvalidOperationException($"qemu-io reported a failure:\n{r.Stdout}\n{r.Stderr}");
        return r.Stdout;
    }

    /// <summary><c>blk io</c> on the image with the secret; fails the test if it reports a failure.</summary>
    public static string BlkIo(string path, params string[] commands)
    {
        var args = new List<string> { "io", "--object", SecretObject, "--image-opts" };
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }
        args.Add(Opts(path));
        var r = BlkRunner.Run([.. args]).EnsureSuccess("blk io");
        if (r.Stdout.Contains("failed", StringComparison.Ordinal) || r.Stderr.Length > 0)
            throw new InvalidOperationException($"blk io reported a failure:\n{r.Stdout}\n{r.Stderr}");
        return r.Stdout;
    }
}
