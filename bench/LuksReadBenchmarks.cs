using BenchmarkDotNet.Attributes;
using Block.Crypto;
using Block.Crypto.Driver;
using Block.Drivers;
using Block.Drivers.File;
using Block.Graph;
using Block.Qapi;

namespace Block.Bench;

/// <summary>
/// Reads and writes through a LUKS image (backend → luks → file, per engine, page cache): the cost of decryption
/// and encryption on the request path, and proof that a LUKS read allocates nothing.
/// </summary>
public class LuksReadBenchmarks : EncryptedImageBenchmarks
{
    /// <summary>The I/O engine under test.</summary>
    [Params(BlockdevAioOptions.Inline, BlockdevAioOptions.Threads, BlockdevAioOptions.IoUring)]
    public BlockdevAioOptions Engine { get; set; }

    /// <inheritdoc />
    protected override string FileName => "blk-bench-luks.img";

    /// <inheritdoc />
    protected override DriverRegistry AddDriver(DriverRegistry registry) => registry.AddLuks();

    /// <inheritdoc />
    protected override ValueTask CreateAsync(BlockGraph graph, string path) =>
        graph.CreateImageAsync("luks", path, new Dictionary<string, string>
        {
            ["size"] = Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["key-secret"] = "s0",
            ["iter-time"] = "10",
        });

    /// <inheritdoc />
    protected override async ValueTask<BlockBackend> OpenAsync(BlockGraph graph, string path)
    {
        var node = await graph.AddNodeAsync(new BlockdevOptionsLuks
        {
            NodeName = "bench",
            KeySecret = "s0",
            File = new BlockdevOptionsFile { Filename = path, Aio = Engine },
        });
        return graph.CreateBackend(node, new BlockBackendOptions { Accounting = false });
    }
}
