using Block.Cli.Common;

namespace Block.Cli.Serve;

/// <summary>One option of <c>blk serve</c>'s command line, kept in order: QSD applies its options in the order given.</summary>
/// <param name="Name">The option's long name without dashes (<c>blockdev</c>, <c>chardev</c>…).</param>
/// <param name="Value">Its argument.</param>
internal readonly record struct ServeOption(string Name, string Value)
{
    /// <summary>How QSD names the option in an error: <c>--blockdev driver=file,…</c>.</summary>
    public override string ToString() => $"--{Name} {Value}";
}

/// <summary>
/// <c>blk serve</c>'s command line, which is qemu-storage-daemon 7.2's: <c>--blockdev</c>, <c>--object</c>,
/// <c>--chardev</c>, <c>--monitor</c>, <c>--nbd-server</c>, <c>--export</c>, <c>--pidfile</c>, <c>--daemonize</c>,
/// <c>-h</c> and <c>-V</c>, plus <c>--drive</c> and <c>--device</c> in QEMU's <c>-drive</c>/<c>-device</c> syntax (a named backend, a guest device on it), each as <c>--opt value</c> or <c>--opt=value</c>.
/// </summary>
internal sealed class ServeOptions
{
    private static readonly string[] TakesValue = ["blockdev", "drive", "device", "object", "chardev", "monitor", "nbd-server", "export", "pidfile", "trace"];

    /// <summary>The options that build the daemon, in command-line order.</summary>
    public List<ServeOption> Options { get; } = [];

    /// <summary><c>--pidfile</c>.</summary>
    public string? PidFile { get; private set; }

    /// <summary><c>--daemonize</c>.</summary>
    public bool Daemonize { get; private set; }

    /// <summary><c>-h</c>.</summary>
    public bool Help { get; private set; }

    /// <summary><c>-V</c>.</summary>
    public bool Version { get; private set; }

    /// <summary>Parses <paramref name="args"/>.</summary>
    /// <exception cref="CliException">An unknown option, a missing argument or a stray argument, with QSD's text.</exception>
    public static ServeOptions Parse(IReadOnlyList<string> args)
    {
        var result = new ServeOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg is "-h" or "--help")
            {
                result.Help = true;
                continue;
            }
            if (arg is "-V" or "--version")
            {
                result.Version = true;
                continue;
            }
            if (arg == "--daemonize")
            {
                result.Daemonize = true;
                continue;
            }
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                if (arg.StartsWith('-') && arg.Length > 1)
                    throw new CliException($"invalid option -- '{arg[1..]}'");
                throw new CliException($"{arg}: Unexpected argument");
            }
            string name = arg[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            if (Array.IndexOf(TakesValue, name) < 0)
                throw new CliException($"unrecognized option '{arg}'");
            if (value is null)
            {
                if (i + 1 >= args.Count)
                    throw new CliException($"option '--{name}' requires an argument");
                value = args[++i];
            }
            if (name == "pidfile")
                result.PidFile = value;
            else if (name == "trace")
                throw new CliException($"--trace {value}: tracing is not supported");
            else
                result.Options.Add(new ServeOption(name, value));
        }
        return result;
    }
}
