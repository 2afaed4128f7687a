using System.Text;
using Block.Graph;

namespace Block.Fuzz.Targets;

/// <summary>QEMU's dotted <c>key=value</c> option strings, through the typed parser of every core driver.</summary>
public sealed class OptionsTarget : IFuzzTarget
{
    private static readonly BlockGraph s_graph = new();

    /// <inheritdoc />
    public string Name => "options";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input) => s_graph.Parser.ParseKeyValue(Encoding.UTF8.GetString(input));
}
