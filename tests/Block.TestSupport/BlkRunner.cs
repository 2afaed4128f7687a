using System.Text.RegularExpressions;
using Block.Cli;

namespace Block.TestSupport;

/// <summary>Runs <c>blk</c> in-process, capturing its streams, and normalises outputs for comparison with QEMU's tools.</summary>
public static partial class BlkRunner
{
    /// <summary>The <c>blk</c> executable built beside the tests (the apphost of the referenced Block.Cli), for runs in another process.</summary>
    public static string ExecutablePath => System.IO.Path.Combine(AppContext.BaseDirectory, "blk");

    public static ProcessResult Run(params string[] args) => RunWithInput(null, args);

    public static ProcessResult RunWithInput(string? stdin, params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int code = Blk.RunAsync(args, stdout, stderr, stdin is null ? null : new StringReader(stdin)).GetAwaiter().GetResult();
        return new ProcessResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>qemu-img's or qemu-io's text with its program name replaced by blk's.</summary>
    public static string AsBlk(string qemuText) => qemuText.Replace("qemu-img: ", "blk: ").Replace("qemu-io: ", "blk: ");

    /// <summary>Program names and the parts of qemu-io's statistics that depend on timing are made equal.</summary>
    public static string Normalize(string text)
    {
        text = ArgvZero().Replace(text, "blk: ");
        text = AsBlk(text).Replace("Try 'qemu-img --help'", "Try 'blk --help'");
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
