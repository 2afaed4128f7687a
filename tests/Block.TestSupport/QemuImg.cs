using System.Text.Json.Nodes;

namespace Block.TestSupport;

/// <summary>
/// The oracle: Debian's qemu-img 7.2. Tests state what they check (<c>QemuImg.Map(path)</c>) instead of how to run it.
/// A test that needs it fails loudly when it is missing: the test command installs it.
/// </summary>
public static class QemuImg
{
    private static readonly Lazy<string> s_path = new(() => ProcessRunner.Which("qemu-img")
        ?? throw new InvalidOperationException("qemu-img is not installed: the oracle tests need Debian's qemu-utils (run ./test.sh, which installs it)"));

    /// <summary>Path of the qemu-img binary.</summary>
    public static string Path => s_path.Value;

    /// <summary>Runs qemu-img with <paramref name="args"/>.</summary>
    public static ProcessResult Run(params string[] args) => ProcessRunner.Run(Path, args);

    /// <summary>Creates an image; throws on failure.</summary>
    public static void Create(string format, string path, string size, string? options = null)
    {
        var args = new List<string> { "create", "-q", "-f", format };
        if (options != null)
        {
            args.Add("-o");
            args.Add(options);
        }
        args.Add(path);
        args.Add(size);
        ProcessRunner.Run(Path, args).EnsureSuccess("qemu-img create");
    }

    /// <summary><c>qemu-img map --output=json</c>, as text.</summary>
    public static string MapJsonText(string path, string format = "raw") =>
        Run("map", "--output=json", "-f", format, path).EnsureSuccess("qemu-img map").Stdout;

    /// <summary><c>qemu-img map</c>, human output.</summary>
    public static string MapHumanText(string path, string format = "raw") =>
        Run("map", "-f", format, path).EnsureSuccess("qemu-img map").Stdout;

    /// <summary><c>qemu-img info --output=json</c>, parsed.</summary>
    public static JsonObject Info(string path, string format = "raw") =>
        (JsonObject)JsonNode.Parse(InfoJsonText(path, format))!;

    /// <summary><c>qemu-img info --output=json</c>, as text.</summary>
    public static string InfoJsonText(string path, string format = "raw") =>
        Run("info", "--output=json", "-f", format, path).EnsureSuccess("qemu-img info").Stdout;

    /// <summary><c>qemu-img compare</c>: its exit code (0 same, 1 different, 2 error).</summary>
    public static int Compare(string a, string b, string formatA = "raw", string formatB = "raw") =>
        Run("compare", "-f", formatA, "-F", formatB, a, b).ExitCode;

    /// <summary><c>qemu-img check</c>: the result.</summary>
    public static ProcessResult Check(string path, string format) => Run("check", "-f", format, path);
}
