using System.Text;
using Block.Options;

namespace Block.Fuzz.Targets;

/// <summary>The size syntax (<c>1.5G</c>, <c>0x10k</c>): parsing must never throw, and must be total on what it accepts.</summary>
public sealed class SizeTarget : IFuzzTarget
{
    /// <inheritdoc />
    public string Name => "size";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input)
    {
        string text = Encoding.UTF8.GetString(input);
        SizeParser.TryParse(text, out _);
        SizeParser.TryParseInt64(text, out _);
    }
}
