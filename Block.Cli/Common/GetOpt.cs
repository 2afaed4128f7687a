namespace Block.Cli.Common;

/// <summary>
/// GNU <c>getopt_long</c> semantics, as qemu-img and qemu-io parse their arguments: short options bundled
/// (<c>-rU</c>), arguments attached or separate (<c>-fraw</c>, <c>-f raw</c>), long options with <c>=</c> or a
/// separate argument, non-options permuted to the end, and <c>--</c> ending the options.
/// </summary>
internal sealed class GetOpt
{
    private readonly string _shortOptions;
    private readonly IReadOnlyDictionary<string, (bool HasArgument, char Code)> _longOptions;

    /// <summary>Creates a parser. <paramref name="shortOptions"/> is getopt's string ("f:rU"); long options map to a code.</summary>
    public GetOpt(string shortOptions, IReadOnlyDictionary<string, (bool HasArgument, char Code)>? longOptions = null)
    {
        _shortOptions = shortOptions.TrimStart('+', ':');
        _longOptions = longOptions ?? new Dictionary<string, (bool, char)>();
    }

    /// <summary>Parses <paramref name="args"/>: the options in order, and the remaining operands.</summary>
    /// <exception cref="CliException">An unknown option, or a missing argument.</exception>
    public (List<(char Code, string Name, string? Argument)> Options, List<string> Operands) Parse(IReadOnlyList<string> args, string program)
    {
        var options = new List<(char, string, string?)>();
        var operands = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a == "--")
            {
                operands.AddRange(args.Skip(i + 1));
                break;
            }
            if (a.StartsWith("--", StringComparison.Ordinal))
            {
                string name = a[2..];
                string? value = null;
                int eq = name.IndexOf('=');
                if (eq >= 0)
                {
                    value = name[(eq + 1)..];
                    name = name[..eq];
                }
                var matches = _longOptions.Keys.Where(k => k == name).ToList();
                if (matches.Count == 0)
                    matches = _longOptions.Keys.Where(k => k.StartsWith(name, StringComparison.Ordinal)).ToList();
                if (matches.Count != 1)
                    throw new CliException(matches.Count == 0 ? $"unrecognized option '--{name}'" : $"option '--{name}' is ambiguous");
                var (hasArg, code) = _longOptions[matches[0]];
                if (hasArg && value is null)
                {
                    if (i + 1 >= args.Count)
                        throw new CliException($"option '--{matches[0]}' requires an argument");
                    value = args[++i];
                }
                else if (!hasArg && value != null)
                {
                    throw new CliException($"option '--{matches[0]}' doesn't allow an argument");
                }
                options.Add((code, matches[0], value));
                continue;
            }
            if (a.Length > 1 && a[0] == '-')
            {
                for (int j = 1; j < a.Length; j++)
                {
                    char c = a[j];
                    int idx = _shortOptions.IndexOf(c);
                    if (idx < 0 || c == ':')
                        throw new CliException($"invalid option -- '{c}'");
                    bool hasArg = idx + 1 < _shortOptions.Length && _shortOptions[idx + 1] == ':';
                    if (!hasArg)
                    {
                        options.Add((c, c.ToString(), null));
                        continue;
                    }
                    string value;
                    if (j + 1 < a.Length)
                    {
                        value = a[(j + 1)..];
                    }
                    else
                    {
                        if (i + 1 >= args.Count)
                            throw new CliException($"option requires an argument -- '{c}'");
                        value = args[++i];
                    }
                    options.Add((c, c.ToString(), value));
                    break;
                }
                continue;
            }
            operands.Add(a);
        }
        _ = program;
        return (options, operands);
    }
}
