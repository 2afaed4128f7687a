using System.Diagnostics;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using Block.Io;
using Block.Nbd.Client;

namespace Block.Bench;

/// <summary>
/// Our NBD client alone: 4 KiB reads and writes, QD1, against qemu-nbd 7.2 (another process) serving a page-cached
/// 64 MiB raw file on a unix socket, so that the memory diagnoser counts the client's allocations only.
/// </summary>
[MemoryDiagnoser]
public class NbdClientBenchmarks
{
    private const int Ops = 1000;
    private const long Size = 64L << 20;
    private string _dir = null!;
    private Process _server = null!;
    private NbdClient _client = null!;
    private AlignedBuffer _buffer = null!;
    private long[] _offsets = null!;

    [GlobalSetup]
    public void Setup()
    {
        _dir = Directory.CreateTempSubdirectory("blk-bench-nbd-client-").FullName;
        string image = Path.Combine(_dir, "disk.raw");
        var data = new byte[Size];
        new Random(42).NextBytes(data);
        File.WriteAllBytes(image, data);
        string socket = Path.Combine(_dir, "s.sock");
        _server = Process.Start(new ProcessStartInfo("qemu-nbd", ["-t", "-f", "raw", "-x", "disk", "-k", socket, image])
        {
            RedirectStandardError = true,
        }) ?? throw new InvalidOperationException("qemu-nbd did not start (install qemu-utils)");
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                _client = NbdClient.ConnectAsync(NbdServerAddress.Unix(socket), new NbdClientOptions { Export = "disk" }).GetAwaiter().GetResult();
                break;
            }
            catch (Exception e) when (e is BlockException or SocketException && deadline.Elapsed < TimeSpan.FromSeconds(60) && !_server.HasExited)
            {
                Thread.Sleep(20);
            }
        }
        _buffer = AlignedBuffer.Allocate(4096);
        var rng = new Random(7);
        _offsets = Enumerable.Range(0, Ops).Select(_ => rng.NextInt64(Size / 4096) * 4096).ToArray();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _server.Kill();
        _server.WaitForExit();
        _buffer.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Random 4 KiB reads, one at a time (QD1).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task ClientRead4K()
    {
        var buffer = new IoVector(_buffer.Memory[..4096]);
        foreach (long offset in _offsets)
            await _client.ReadAsync(offset, buffer);
    }

    /// <summary>Random 4 KiB writes, one at a time (QD1).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task ClientWrite4K()
    {
        var buffer = new IoVector(_buffer.Memory[..4096]);
        foreach (long offset in _offsets)
            await _client.WriteAsync(offset, buffer, fua: false);
    }
}
