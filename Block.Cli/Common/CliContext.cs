using Block.Graph;

namespace Block.Cli.Common;

/// <summary>The streams a command writes to and the graph it opens images in.</summary>
internal sealed class CliContext
{
    public CliContext(TextWriter stdout, TextWriter stderr, TextReader? stdin = null)
    {
        Out = stdout;
        Err = stderr;
        In = stdin ?? TextReader.Null;
    }

    /// <summary>The program name errors are prefixed with.</summary>
    public const string Program = "blk";

    public TextWriter Out { get; }

    public TextWriter Err { get; }

    public TextReader In { get; }

    /// <summary>Prints <c>blk: message</c> on stderr.</summary>
    public void Error(string message) => Err.WriteLine($"{Program}: {message}");

    /// <summary>Prints <c>blk: warning: message</c> on stderr.</summary>
    public void Warning(string message) => Err.WriteLine($"{Program}: warning: {message}");

    /// <summary>Creates a graph with every driver this build has, reporting its warnings on stderr.</summary>
    public BlockGraph CreateGraph()
    {
        var graph = new BlockGraph(new BlockGraphOptions { Drivers = Drivers.Create() });
        graph.WarningRaised += Warning;
        graph.MessagePrinted += Err.WriteLine;
        return graph;
    }
}
