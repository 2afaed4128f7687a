namespace Block.Fuzz.Targets;

/// <summary>
/// One parser under fuzzing. <see cref="Run"/> must return normally or throw a <see cref="BlockException"/> (the
/// documented way to refuse input); anything else — another exception, a hang, a crash — is a finding.
/// </summary>
public interface IFuzzTarget
{
    /// <summary>The name used on the command line and as the corpus folder.</summary>
    string Name { get; }

    /// <summary>Feeds one input to the parser.</summary>
    void Run(ReadOnlySpan<byte> input);
}
