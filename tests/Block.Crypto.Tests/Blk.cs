using System.Text.RegularExpressions;
using Block.TestSupport;

namespace Block.Crypto.Tests;

/// <summary>Runs <c>blk</c> in-process and normalises QEMU tools' output for comparison with it.</summary>
internal static partial class Blk
{
    public static ProcessResult Run(params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int code = Block.Cli.Blk.RunAsync(args, stdout, stderr).GetAwaiter().GetResult();
        return new ProcessResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Program names and qemu-io's timing figures made equal.</summary>
    public static string Normalize(string text)
    {
        text = ArgvZero().Replace(text, "blk: ");
        text = text.Replace("qemu-img: ", "blk: ").Replace("qemu-io: ", "blk: ");
        return Timing().Replace(text, "TIME (RATE and OPS)");
    }

    [GeneratedRegex(@"^/\S*/qemu-(img|io): ", RegexOptions.Multiline)]
    private static partial Regex ArgvZero();

    [GeneratedRegex(@"(\d\d\.\d\d sec|\d+:\d\d:\d\d\.\d\d) \([^)]*/sec and [0-9.]+ ops/sec\)")]
    private static partial Regex Timing();
}
