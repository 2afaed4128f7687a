using System.Text.RegularExpressions;
using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>Runs <c>blk</c> in-process, capturing its streams, and normalises outputs for comparison with QEMU's tools.</summary>
internal static partial class BlkRunner
{
    public static ProcessResult Run(params string[] args) => RunWithInput(null, args);

    public static ProcessResult RunWithInput(string? stdin, params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int code = Blk.RunAsync(args, stdout, stderr, stdin is null ? null : new StringReader(stdin)).GetAwaiter().GetResult();
        return new ProcessResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Program names and the parts of qemu-io's statistics that depend on timing are made equal.</summary>
    public static string Normalize(string text)
    {
        text = ArgvZero().Replace(text, "blk: ");
        text = text.Replace("qemu-img: ", "blk: ").Replace("qemu-io: ", "blk: ").Replace("Try 'qemu-img --help'", "Try 'blk --help'");
        text = Timing().Replace(text, "TIME (RATE and OPS)");
        text = Machine().Replace(text, "$1,$2,TIME,RATE,OPS");
        return text;
    }

    [GeneratedRegex(@"^/\S*/qemu-(img|io): ", RegexOptions.Multiline)]
    private static partial Regex ArgvZero();

    [GeneratedRegex(@"(\d\d\.\d\d sec|\d+:\d\d:\d\d\.\d\d) \([^)]*/sec and [0-9.]+ ops/sec\)")]
    private static partial Regex Timing();

    [GeneratedRegex(@"^(\d+),(\d+),\d+:\d\d:\d\d\.\d\d,[0-9.]+,[0-9.]+$", RegexOptions.Multiline)]
    private static partial Regex Machine();
}
