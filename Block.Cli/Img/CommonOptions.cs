using Block.Cli.Common;
using Block.Graph;

namespace Block.Cli.Img;

/// <summary>The options most image commands share: <c>-h</c>, <c>-f</c>, <c>-q</c>, <c>-U</c>, <c>--image-opts</c>, <c>--object</c>.</summary>
internal sealed class CommonOptions(CliContext cli, BlockGraph graph, int errorExit = 1)
{
    public string? Format { get; private set; }

    public bool ImageOpts { get; private set; }

    public bool ForceShare { get; private set; }

    public bool Quiet { get; private set; }

    /// <summary>Set when an option ends the command (help printed, or a bad object): the exit code.</summary>
    public int? Exit { get; private set; }

    /// <summary>Applies <paramref name="code"/> if it is a common option; false leaves it to the command.</summary>
    public bool Apply(string code, string? arg)
    {
        switch (code)
        {
            case "h":
                cli.Out.Write(HelpText.Text);
                Exit = 0;
                return true;
            case "f":
                Format = arg;
                return true;
            case "q":
                Quiet = true;
                return true;
            case "U":
                ForceShare = true;
                return true;
            case "image-opts":
                ImageOpts = true;
                return true;
            case "object":
                if (!ImgCommon.AddObject(cli, graph, arg!))
                    Exit = errorExit;
                return true;
            default:
                return false;
        }
    }
}
