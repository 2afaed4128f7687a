using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Block.Drivers;
using Block.Drivers.Blkdebug;
using Block.Drivers.File;
using Block.Drivers.Null;
using Block.Graph;
using Block.Io;
using Block.Qapi;
using Block.Qcow2;
using Block.Qcow2.Driver;

namespace Block.Bench;

/// <summary>
/// What blkdebug's debug events cost the request path: one report with no blkdebug node open in the process (a static
/// load and a completed <see cref="ValueTask"/>), and qcow2's allocating 4 KiB writes (about a dozen reports each:
/// cluster_alloc, l2_update, write_aio, cow_*…) with no blkdebug node open and with one open elsewhere in the process,
/// which switches every report (and the fast paths that skip them) to the reporting path.
/// </summary>
[MemoryDiagnoser]
public class DebugEventBenchmarks
{
    private const int Ops = 1000;
    private BlockGraph _graph = null!;
    private BlockBackend _node = null!;
    private AlignedBuffer _buffer = null!;
    private BlockGraph? _fresh;
    private BlockBackend? _freshBackend;
    private BlockGraph? _blkdebugGraph;

    /// <summary>True to keep a blkdebug node (no rules, on a null-co node) open in the process while the writes run.</summary>
    [Params(false, true)]
    public bool BlkdebugOpen { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault() });
        _node = _graph.OpenBackendAsync(new BlockdevOptionsNull { Size = 1 << 30 }, new BlockBackendOptions { Accounting = false })
            .AsTask().GetAwaiter().GetResult();
        _buffer = AlignedBuffer.Allocate(4096);
        if (BlkdebugOpen)
        {
            _blkdebugGraph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault() });
            _blkdebugGraph.OpenBackendAsync(new BlockdevOptionsBlkdebug { Image = new BlockdevOptionsNull { Size = 1 << 20 } },
                new BlockBackendOptions { Accounting = false }).AsTask().GetAwaiter().GetResult();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _blkdebugGraph?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _buffer.Dispose();
    }

    /// <summary>One event report, as a driver makes it before each metadata write (no blkdebug below: nothing happens).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task ReportEvent()
    {
        var node = _node.Root!;
        for (int i = 0; i < Ops; i++)
            await node.DebugEventAsync(BlkdebugEvent.L2Update);
    }

    [IterationSetup(Target = nameof(Qcow2AllocatingWrite4K))]
    public void FreshImage()
    {
        string path = Path.Combine(Path.GetTempPath(), "blk-bench-debug-events.qcow2");
        File.Delete(path);
        Process.Start("qemu-img", ["create", "-q", "-f", "qcow2", path, "1G"])!.WaitForExit();
        _fresh = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2() });
        _freshBackend = _fresh.OpenBackendAsync(new BlockdevOptionsQcow2 { File = new BlockdevOptionsFile { Filename = path, Aio = BlockdevAioOptions.Inline } },
            new BlockBackendOptions { Accounting = false }).AsTask().GetAwaiter().GetResult();
    }

    [IterationCleanup(Target = nameof(Qcow2AllocatingWrite4K))]
    public void CloseFreshImage()
    {
        _fresh?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _fresh = null;
    }

    /// <summary>4 KiB writes each into a new cluster of a fresh qcow2 image (allocation, COW, L2 update).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task Qcow2AllocatingWrite4K()
    {
        var buffer = new IoVector(_buffer.Memory[..4096]);
        for (int i = 0; i < Ops; i++)
            await _freshBackend!.WriteAsync((long)i * 65536, buffer);
    }
}
