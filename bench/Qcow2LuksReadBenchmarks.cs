using Block.Drivers;
using Block.Drivers.File;
using Block.Graph;
using Block.Qapi;
using Block.Qcow2;
using Block.Qcow2.Driver;

namespace Block.Bench;

/// <summary>
/// Reads and in-place writes of a fully allocated qcow2 image with LUKS encryption (backend → qcow2 → file, inline
/// engine, page cache, L2 cached): the cost of decryption on qcow2's lock-free read path, and proof that it allocates
/// nothing.
/// </summary>
public class Qcow2LuksReadBenchmarks : EncryptedImageBenchmarks
{
    /// <inheritdoc />
    protected override string FileName => "blk-bench-qcow2-luks.qcow2";

    /// <inheritdoc />
    protected override DriverRegistry AddDriver(DriverRegistry registry) => registry.AddQcow2();

    /// <inheritdoc />
    protected override ValueTask CreateAsync(BlockGraph graph, string path) =>
        graph.CreateImageAsync("qcow2", path, new Dictionary<string, string>
        {
            ["size"] = Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["encrypt.format"] = "luks",
            ["encrypt.key-secret"] = "s0",
            ["encrypt.iter-time"] = "10",
        });

    /// <inheritdoc />
    protected override ValueTask<BlockBackend> OpenAsync(BlockGraph graph, string path) =>
        graph.OpenBackendAsync(new BlockdevOptionsQcow2
        {
            File = new BlockdevOptionsFile { Filename = path, Aio = BlockdevAioOptions.Inline },
            Encrypt = new BlockdevQcow2Encryption { KeySecret = "s0" },
        }, new BlockBackendOptions { Accounting = false });
}
