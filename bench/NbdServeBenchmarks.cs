using BenchmarkDotNet.Attributes;
using Block.Drivers.File;
using Block.Drivers.Raw;
using Block.Graph;
using Block.Io;
using Block.Nbd.Client;
using Block.Nbd.Server;

namespace Block.Bench;

/// <summary>
/// 4 KiB reads and writes served by our NBD server to our NBD client, in one process over a unix socket, from a
/// page-cached raw file (threads engine). The memory diagnoser counts every allocation in the process, server and
/// client together: a served request allocates nothing.
/// </summary>
[MemoryDiagnoser]
public class NbdServeBenchmarks
{
    private const int Ops = 1000;
    private BlockGraph _graph = null!;
    private BlockBackend _backend = null!;
    private NbdServer _server = null!;
    private NbdClient _client = null!;
    private AlignedBuffer _buffer = null!;
    private long[] _offsets = null!;
    private string _socket = null!;

    [GlobalSetup]
    public void Setup()
    {
        string path = BenchImage.Ensure();
        _graph = new BlockGraph();
        var node = _graph.AddNodeAsync(new BlockdevOptionsRaw
        {
            NodeName = "bench",
            File = new BlockdevOptionsFile { Filename = path },
        }).AsTask().GetAwaiter().GetResult();
        _backend = _graph.CreateBackend(node, new BlockBackendOptions { Accounting = false });
        _server = new NbdServer();
        _server.AddExport(new NbdExport("disk", _backend, writable: true));
        _socket = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"blk-bench-nbd-{Environment.ProcessId}.sock");
        _server.Listen(NbdServer.BindUnix(_socket), _socket);
        _client = NbdClient.ConnectAsync(NbdServerAddress.Unix(_socket), new NbdClientOptions { Export = "disk" }).GetAwaiter().GetResult();
        _buffer = AlignedBuffer.Allocate(4096);
        var rng = new Random(7);
        _offsets = Enumerable.Range(0, Ops).Select(_ => rng.NextInt64(BenchImage.Size / 4096) * 4096).ToArray();
        var warm = new byte[1 << 20];
        using var plain = File.OpenHandle(path);
        for (long o = 0; o < BenchImage.Size; o += warm.Length)
            RandomAccess.Read(plain, warm, o);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _backend.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _buffer.Dispose();
    }

    /// <summary>Random 4 KiB reads over NBD, one at a time (QD1).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task ServedRead4K()
    {
        var buffer = new IoVector(_buffer.Memory[..4096]);
        foreach (long offset in _offsets)
            await _client.ReadAsync(offset, buffer);
    }

    /// <summary>Random 4 KiB writes over NBD (overwriting allocated data), one at a time (QD1).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task ServedWrite4K()
    {
        var buffer = new IoVector(_buffer.Memory[..4096]);
        foreach (long offset in _offsets)
            await _client.WriteAsync(offset, buffer, fua: false);
    }
}
