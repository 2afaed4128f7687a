using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Block.TestSupport;

/// <summary>
/// The oracle: Debian's qemu-img 7.2. Tests state what they check (<c>QemuImg.Map(path)</c>) instead of how to run it.
/// A test that needs it fails loudly when it is missing: the test command installs it.
/// </summary>
/// <remarks>
/// Every run goes through <see cref="Run(IEnumerable{string}, string?)"/>, which asks again, a bounded number of times,
/// when the answer is QEMU's PBKDF2 calibration failure and nothing else. qemu-img calibrates whenever it makes a LUKS
/// key slot (<c>create -f luks</c>, <c>-o encrypt.format=luks</c>, <c>convert</c> into either, <c>measure</c> of either):
/// it times 32768 iterations with the thread's CPU clock, which ticks in jiffies on this kind of virtual machine, so a
/// SHA-NI CPU that does them in a few milliseconds reads zero now and then and QEMU gives up with "Unable to get
/// accurate CPU usage". Measured here: 2 of 40 runs of <c>qemu-img create -f luks</c> in one batch, 11 of 60 in the next, and 8 of 60 with
/// <c>-f qcow2 -o encrypt.format=luks</c>. The failed command
/// leaves no file behind (QEMU deletes what it created), so asking again is asking the same question.
/// </remarks>
public static partial class QemuImg
{
    /// <summary>How many times a command that met the calibration failure is run in all before its answer stands.</summary>
    /// <remarks>At the worst rate measured (11 runs of 60) ten tries all fail about once in 30 million.</remarks>
    public const int CalibrationAttempts = 10;

    private static readonly Lazy<string> s_path = new(() => ProcessRunner.Which("qemu-img")
        ?? throw new InvalidOperationException("qemu-img is not installed: the oracle tests need Debian's qemu-utils (run ./test.sh, which installs it)"));

    /// <summary>Path of the qemu-img binary.</summary>
    public static string Path => s_path.Value;

    /// <summary>Runs qemu-img with <paramref name="args"/> (see <see cref="Run(IEnumerable{string}, string?)"/>).</summary>
    public static ProcessResult Run(params string[] args) => Run(args, workingDirectory: null);

    /// <summary>
    /// Runs qemu-img with <paramref name="args"/> in <paramref name="workingDirectory"/>, again while it fails with
    /// QEMU's PBKDF2 calibration failure (at most <see cref="CalibrationAttempts"/> runs); any other answer, failures
    /// included, is returned as it came.
    /// </summary>
    public static ProcessResult Run(IEnumerable<string> args, string? workingDirectory) =>
        AskingAgainOnCalibrationFailure(() => ProcessRunner.Run(Path, args, workingDirectory: workingDirectory));

    /// <summary>
    /// Runs <paramref name="run"/> again while its result is QEMU's PBKDF2 calibration failure, at most
    /// <see cref="CalibrationAttempts"/> times in all, and returns the last result.
    /// </summary>
    public static ProcessResult AskingAgainOnCalibrationFailure(Func<ProcessResult> run)
    {
        for (int attempt = 1; ; attempt++)
        {
            var result = run();
            if (attempt == CalibrationAttempts || !IsCalibrationFailure(result))
                return result;
        }
    }

    /// <summary>
    /// Whether <paramref name="result"/> is QEMU's PBKDF2 calibration failure and nothing else: exit code 1 and one
    /// line on stderr, <c>qemu-img: NAME: Unable to get accurate CPU usage</c>.
    /// </summary>
    public static bool IsCalibrationFailure(ProcessResult result) =>
        result.ExitCode == 1 && CalibrationFailure().IsMatch(result.Stderr);

    /// <summary>
    /// Creates an image; throws on failure. <paramref name="objects"/> are <c>--object</c> values (a LUKS image's
    /// secret).
    /// </summary>
    public static void Create(string format, string path, string size, string? options = null, params string[] objects)
    {
        var args = new List<string> { "create", "-q", "-f", format };
        foreach (var o in objects)
        {
            args.Add("--object");
            args.Add(o);
        }
        if (options != null)
        {
            args.Add("-o");
            args.Add(options);
        }
        args.Add(path);
        args.Add(size);
        Run(args, workingDirectory: null).EnsureSuccess("qemu-img create");
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

    [GeneratedRegex(@"\Aqemu-img: [^\n]*Unable to get accurate CPU usage\n\z")]
    private static partial Regex CalibrationFailure();
}
