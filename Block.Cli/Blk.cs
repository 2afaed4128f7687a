using Block.Cli.Common;
using Block.Cli.Img;
using Block.Cli.Io;

namespace Block.Cli;

/// <summary>
/// The <c>blk</c> tool: qemu-img's commands and flags (<c>blk info</c>, <c>blk convert</c>…) and qemu-io's command
/// language (<c>blk io</c>), with their output, JSON shapes and exit codes.
/// </summary>
public static class Blk
{
    /// <summary>The version line.</summary>
    public const string Version = "blk version 0.1.0 (qemu-img 7.2 compatible)";

    /// <summary>Runs <c>blk</c> with <paramref name="args"/>; returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, TextReader? stdin = null)
    {
        var cli = new CliContext(stdout, stderr, stdin);
        try
        {
            if (args.Length == 0)
                return Usage(cli, "Not enough arguments");
            string command = args[0];
            string[] rest = args[1..];
            switch (command)
            {
                case "-h":
                case "--help":
                    stdout.Write(HelpText.Text);
                    return 0;
                case "-V":
                case "--version":
                    stdout.WriteLine(Version);
                    return 0;
                case "amend":
                    return await AmendCommand.RunAsync(cli, rest);
                case "info":
                    return await InfoCommand.RunAsync(cli, rest);
                case "create":
                    return await CreateCommand.RunAsync(cli, rest);
                case "check":
                    return await CheckCommand.RunAsync(cli, rest);
                case "map":
                    return await MapCommand.RunAsync(cli, rest);
                case "measure":
                    return await MeasureCommand.RunAsync(cli, rest);
                case "compare":
                    return await CompareCommand.RunAsync(cli, rest);
                case "convert":
                    return await ConvertCommand.RunAsync(cli, rest);
                case "resize":
                    return await ResizeCommand.RunAsync(cli, rest);
                case "bench":
                    return await BenchCommand.RunAsync(cli, rest);
                case "bitmap":
                    return await BitmapCommand.RunAsync(cli, rest);
                case "snapshot":
                    return await SnapshotCommand.RunAsync(cli, rest);
                case "commit":
                    return await CommitCommand.RunAsync(cli, rest);
                case "rebase":
                    return await RebaseCommand.RunAsync(cli, rest);
                case "io":
                    return await QemuIo.RunAsync(cli, rest);
                case "serve":
                    return await Serve.ServeCommand.RunAsync(cli, rest);
                case "nbd":
                    return await Nbd.NbdCommand.RunAsync(cli, rest);
                default:
                    if (command.StartsWith('-'))
                        return Usage(cli, $"unrecognized option '{command}'");
                    return Usage(cli, $"Command not found: {command}");
            }
        }
        catch (Block.Drivers.Blkverify.BlkverifyMismatchException e)
        {
            // QEMU ends the process on a blkverify mismatch; blk stops the same way, whatever the command.
            await stdout.FlushAsync();
            stderr.WriteLine(e.Message);
            return 1;
        }
        finally
        {
            await stdout.FlushAsync();
        }
    }

    /// <summary>Prints a usage error with the hint line; exit code 1.</summary>
    internal static int Usage(CliContext cli, string message)
    {
        cli.Error(message);
        cli.Err.WriteLine($"Try '{CliContext.Program} --help' for more information");
        return 1;
    }
}
