namespace Block.Cli.Common;

/// <summary>A usage error of the command line: printed as <c>blk: message</c>, exit code 1.</summary>
internal sealed class CliException : Exception
{
    public CliException(string message, int exitCode = 1)
        : base(message)
    {
        ExitCode = exitCode;
    }

    public int ExitCode { get; }
}
