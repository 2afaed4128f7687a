using Block.Cli.Common;
using Block.Graph;
using Block.Qapi;

namespace Block.Cli.Io;

/// <summary>The state of a <c>blk io</c> run: the graph, the open image and the defaults for <c>open</c>.</summary>
internal sealed class IoSession : IAsyncDisposable
{
    public IoSession(CliContext cli, BlockGraph graph)
    {
        Cli = cli;
        Graph = graph;
        Aio = new AsyncRequests(cli.Out);
    }

    /// <summary>The aio requests in flight and the lines they have yet to print.</summary>
    public AsyncRequests Aio { get; }

    public CliContext Cli { get; }

    public BlockGraph Graph { get; }

    public BlockBackend? Backend { get; private set; }

    /// <summary>Buffers start one byte past an aligned address (<c>-m</c>), exercising the bounce-buffer paths.</summary>
    public bool Misalign { get; set; }

    /// <summary>Flags from the command line that <c>open</c> starts from.</summary>
    public OpenArgs Defaults { get; set; } = new() { Filename = string.Empty, Cache = new CacheMode(false, false, true), Discard = BlockdevDiscardOptions.Unmap };

    public TextWriter Out => Cli.Out;

    /// <summary>Opens an image; prints qemu-io's message and returns false on failure.</summary>
    public async Task<bool> OpenAsync(OpenArgs args)
    {
        if (Backend != null)
        {
            Cli.Error("file open already, try 'help close'");
            return false;
        }
        try
        {
            Backend = await ImageOpener.OpenAsync(Cli, Graph, args);
            return true;
        }
        catch (BlockException e)
        {
            string name = args.ImageOpts ? string.Empty : args.Filename;
            Cli.Error(name.Length > 0 ? $"can't open device {name}: {e.Message}" : $"can't open: {e.Message}");
            return false;
        }
    }

    public async Task CloseAsync()
    {
        if (Backend is { } b)
        {
            // qemu-io would wait forever for a request held at a breakpoint; resume it, and let it finish as QEMU's
            // close lets every request finish, printing its lines.
            // Breakpoints hold one request each, so this ends.
            while (!await Aio.DrainAsync())
            {
                foreach (string tag in Aio.SuspendedTags())
                {
                    Out.WriteLine($"blkdebug: Resuming request '{tag}'");
                    Aio.Resumed(tag, all: false);
                    AsyncRequests.RunInline(() => b.Root?.ResumeDebugRequest(tag));
                }
            }
            Backend = null;
            try
            {
                await b.DisposeAsync();
            }
            catch (BlockException e)
            {
                // What a driver could not write back at close (qcow2's caches), one message a line, as QEMU reports it.
                foreach (string line in e.Message.Split('\n'))
                    Cli.Error(line);
            }
        }
    }

    /// <summary>A buffer of <paramref name="length"/> bytes filled with <paramref name="fill"/> (0xcd unless given), misaligned with <c>-m</c>.</summary>
    public Memory<byte> Allocate(int length, byte fill = 0xcd)
    {
        int pad = Misalign ? 1 : 0;
        var array = GC.AllocateUninitializedArray<byte>(length + pad, pinned: true);
        var memory = array.AsMemory(pad, length);
        memory.Span.Fill(fill);
        return memory;
    }

    public ValueTask DisposeAsync() => new(CloseAsync());
}
