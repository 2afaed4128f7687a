namespace Block.Cli.Common;

/// <summary>
/// GNU <c>getopt_long</c> semantics, as qemu-img and qemu-io parse their arguments: short options bundled
/// (<c>-rU</c>), arguments attached or separate (<c>-fraw</c>, <c>-f raw</c>), long options with <c>=</c> or a
/// separate argument and unambiguous abbreviations (<c>--outp=json</c>), non-options permuted to the end, and
/// <c>--</c> ending the options.
/// </summary>
internal sealed class GetOpt
{
    private readonly string _shortOptions;
    private readonly IReadOnlyDictionary<string, (bool HasArgument, string Code)> _longOptions;

    /// <summary>Creates a parser. <paramref name="shortOptions"/> is getopt's string ("f:rU").</summary>
    public GetOpt(string shortOptions, IReadOnlyDictionary<string, (bool HasArgument, string Code)>? longOptions = null)
    {
        _shortOptions = shortOptions.TrimStart('+', ':');
        _longOptions = longOptions ?? new Dictionary<string, (bool, string)>();
    }

    /// <summary>Parses <paramref name="args"/>: the options in order (code, argument), and the operands.</summary>
    /// <exception cref="GetOptException">An unknown option, or a missing argument.</exception>
    public (List<(string Code, string? Argument)> Options, List<string> Operands) Parse(IReadOnlyList<string> args)
    {
        var options = new List<(string, string?)>();
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
                if (matches.Count == 0)
                    throw new GetOptException(GetOptError.Unrecognized, "--" + name);
                if (matches.Count > 1)
                    throw new GetOptException(GetOptError.Ambiguous, "--" + name);
                var (hasArg, code) = _longOptions[matches[0]];
                if (hasArg && value is null)
                {
                    if (i + 1 >= args.Count)
                        throw new GetOptException(GetOptError.MissingArgument, "--" + matches[0]);
                    value = args[++i];
                }
                else if (!hasArg && value != null)
                {
                    throw new GetOptException(GetOptError.NoArgumentAllowed, "--" + matches[0]);
                }
                options.Add((code, value));
                continue;
            }
            if (a.Length > 1 && a[0] == '-')
            {
                for (int j = 1; j < a.Length; j++)
                {
                    char c = a[j];
                    int idx = _shortOptions.IndexOf(c);
                    if (idx < 0 || c == ':')
                        throw new GetOptException(GetOptError.Unrecognized, "-" + c);
                    bool hasArg = idx + 1 < _shortOptions.Length && _shortOptions[idx + 1] == ':';
                    if (!hasArg)
                    {
                        options.Add((c.ToString(), null));
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
                            throw new GetOptException(GetOptError.MissingArgument, "-" + c);
                        value = args[++i];
                    }
                    options.Add((c.ToString(), value));
                    break;
                }
                continue;
            }
            operands.Add(a);
        }
        return (options, operands);
    }
}

/// <summary>What went wrong while parsing options.</summary>
internal enum GetOptError
{
    Unrecognized,
    Ambiguous,
    MissingArgument,
    NoArgumentAllowed,
}

/// <summary>A getopt failure; each tool words it its own way (qemu-img and qemu-io differ).</summary>
internal sealed class GetOptException : Exception
{
    public GetOptException(GetOptError error, string option)
        : base($"{error} {option}")
    {
        Error = error;
        Option = option;
    }

    public GetOptError Error { get; }

    /// <summary>The option as written: <c>-x</c> or <c>--bogus</c>.</summary>
    public string Option { get; }

    /// <summary>glibc's wording, as qemu-io prints it.</summary>
    public string GlibcMessage => Error switch
    {
        GetOptError.Unrecognized when Option.StartsWith("--", StringComparison.Ordinal) => $"unrecognized option '{Option}'",
        GetOptError.Unrecognized => $"invalid option -- '{Option[1..]}'",
        GetOptError.Ambiguous => $"option '{Option}' is ambiguous",
        GetOptError.MissingArgument when Option.StartsWith("--", StringComparison.Ordinal) => $"option '{Option}' requires an argument",
        GetOptError.MissingArgument => $"option requires an argument -- '{Option[1..]}'",
        _ => $"option '{Option}' doesn't allow an argument",
    };

    /// <summary>qemu-img's wording.</summary>
    public string QemuImgMessage => Error switch
    {
        GetOptError.MissingArgument => $"missing argument for option '{Option}'",
        GetOptError.Ambiguous => $"option '{Option}' is ambiguous",
        GetOptError.NoArgumentAllowed => $"option '{Option}' doesn't allow an argument",
        _ => $"unrecognized option '{Option}'",
    };
}
