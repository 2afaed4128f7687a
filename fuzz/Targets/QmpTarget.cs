using System.Runtime.ExceptionServices;
using Block.Drivers;
using Block.Drivers.Blkdebug;
using Block.Drivers.Null;
using Block.Drivers.Raw;
using Block.Graph;
using Block.Qmp;

namespace Block.Fuzz.Targets;

/// <summary>
/// A whole QMP session: the input is what a client sends (greeting answered, texts split and parsed, commands
/// dispatched over a graph). Only in-memory drivers are registered, so no command the fuzzer composes touches a
/// file. A handler failing with anything but a <see cref="BlockException"/> is a finding, as is any exception out of
/// the session.
/// </summary>
public sealed class QmpTarget : IFuzzTarget
{
    /// <inheritdoc />
    public string Name => "qmp";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input) => RunAsync(input.ToArray()).GetAwaiter().GetResult();

    private static async Task RunAsync(byte[] input)
    {
        var drivers = new DriverRegistry()
            .Add(new NullDriver("null-co"))
            .Add(new NullDriver("null-aio"))
            .Add(new RawDriver())
            .Add(new BlkdebugDriver());
        await using var graph = new BlockGraph(new BlockGraphOptions { Drivers = drivers });
        await using var server = new QmpServer(graph);
        Exception? failure = null;
        server.HandlerFailed += e => failure ??= e;
        using var output = new MemoryStream();
        using var stream = new DuplexStream(new MemoryStream(input, writable: false), output);
        await server.RunSessionAsync(stream);
        if (failure != null)
            ExceptionDispatchInfo.Throw(failure);
    }
}
