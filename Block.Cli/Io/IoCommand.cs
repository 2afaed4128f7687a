namespace Block.Cli.Io;

/// <summary>One command of qemu-io's language: its name, alias, argument count and handler.</summary>
/// <param name="Name">The command name.</param>
/// <param name="Alias">A one-letter alias, or null.</param>
/// <param name="Args">The argument synopsis shown by <c>help</c>.</param>
/// <param name="OneLine">The one-line description.</param>
/// <param name="Min">Fewest arguments.</param>
/// <param name="Max">Most arguments (-1 = any).</param>
/// <param name="NeedsFile">True if an open image is required.</param>
/// <param name="Handler">Runs the command; returns false if it failed.</param>
/// <param name="Help">Extended help text, or null.</param>
internal sealed record IoCommand(
    string Name,
    string? Alias,
    string Args,
    string OneLine,
    int Min,
    int Max,
    bool NeedsFile,
    Func<IoSession, string, string[], Task<bool>> Handler,
    string? Help = null)
{
    /// <summary>The usage line: <c>name args -- one line</c>.</summary>
    public string Usage(string asTyped) => $"{asTyped} {Args} -- {OneLine}";
}
