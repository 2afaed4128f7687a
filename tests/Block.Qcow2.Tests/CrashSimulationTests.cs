using Block.Drivers.File;
using Block.Graph;
using Block.Qapi;
using Block.Qcow2.Driver;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// Crash simulation (DESIGN §7): a filter under the image records every write since the last flush; at many points
/// of allocating, copy-on-write, discard, compressed and resize workloads, images with random subsets of those writes
/// persisted (torn at sector granularity) are materialised. Each must open, <c>qemu-img check</c> must find no
/// corruption (leaks are allowed), and guest data flushed before the crash and not written since must be intact.
/// </summary>
public class CrashSimulationTests
{
    private const long Size = 4L << 20;

    [Theory]
    [InlineData("cluster_size=65536", false)]
    [InlineData("cluster_size=65536", true)]
    [InlineData("cluster_size=4096,refcount_bits=4", true)]
    [InlineData("cluster_size=65536,extended_l2=on", true)]
    [InlineData("cluster_size=65536,lazy_refcounts=on", true)]
    [InlineData("compat=0.10,cluster_size=16384", false)]
    public void Every_crash_image_checks_without_corruption_and_keeps_flushed_data(string options, bool withBacking)
    {
        using var dir = new TempDirectory();
        string path = dir.File("top.qcow2");
        var model = new ByteModel(Size);
        if (withBacking)
        {
            var backing = Patterns.Random((int)Size, 1234);
            File.WriteAllBytes(dir.File("base.raw"), backing);
            QemuImg.Create("qcow2", path, Size.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{options},backing_file=base.raw,backing_fmt=raw");
            model.Write(0, backing);
        }
        else
        {
            QemuImg.Create("qcow2", path, Size.ToString(System.Globalization.CultureInfo.InvariantCulture), options);
        }
        bool lazy = options.Contains("lazy_refcounts=on", StringComparison.Ordinal);
        bool v2 = options.Contains("compat=0.10", StringComparison.Ordinal);

        var recorder = new CrashRecorder();
        var graph = Qcow2Images.NewGraph(new CrashRecorderDriver(recorder));
        var backend = graph.OpenBackendAsync(new BlockdevOptionsQcow2
        {
            File = new BlockdevOptionsCrashRecorder(new BlockdevOptionsFile { Filename = path }),
            Discard = BlockdevDiscardOptions.Unmap,
        }).Wait();

        var random = new Random(options.GetHashCode(StringComparison.Ordinal) ^ (withBacking ? 1 : 0));
        var flushed = new ByteModel(Size);
        flushed.Write(0, model.Bytes);
        var touched = new List<(long Start, long End)>();
        bool resizedSinceFlush = false;
        int crashes = 0;
        try
        {
            for (int step = 0; step < 40; step++)
            {
                long size = model.Length;
                int kind = random.Next(12);
                long offset = random.NextInt64(size - 1);
                int length = (int)Math.Min(size - offset, random.Next(4) == 0 ? random.Next(1, 300_000) : random.Next(1, 20_000));
                switch (kind)
                {
                    case <= 5:
                    {
                        var data = Patterns.Random(length, step);
                        backend.WriteAsync(offset, data).Wait();
                        model.Write(offset, data);
                        touched.Add((offset, offset + length));
                        break;
                    }
                    case 6:
                        backend.WriteZeroesAsync(offset, length, random.Next(2) == 0 ? RequestFlags.MayUnmap : RequestFlags.None).Wait();
                        model.Zero(offset, length);
                        touched.Add((offset, offset + length));
                        break;
                    case 7:
                        if (v2 && withBacking)
                            break;
                        backend.DiscardAsync(offset, length).Wait();
                        // Discarded clusters read as zeroes (v3) or fall through to nothing (no backing): only whole clusters go.
                        ZeroWholeClusters(model, offset, length, v2 ? 16384 : options.Contains("4096", StringComparison.Ordinal) ? 4096 : 65536);
                        touched.Add((offset, offset + length));
                        break;
                    case 8:
                    {
                        int cs = v2 ? 16384 : options.Contains("4096", StringComparison.Ordinal) ? 4096 : 65536;
                        long cluster = random.NextInt64(size / cs) * cs;
                        var data = Patterns.Fill(cs, (byte)step);
                        try
                        {
                            backend.WriteAsync(cluster, data, RequestFlags.Compressed).Wait();
                            model.Write(cluster, data);
                        }
                        catch (BlockException e) when (e.Errno == Errno.EIO)
                        {
                            // An allocated cluster: compression refuses it.
                        }
                        touched.Add((cluster, cluster + cs));
                        break;
                    }
                    case 9:
                    {
                        if (v2 && withBacking)
                            break;
                        long newSize = (Size / 2 + random.NextInt64(Size)) / 512 * 512;
                        backend.TruncateAsync(newSize).Wait();
                        model.Resize(newSize);
                        resizedSinceFlush = true;
                        break;
                    }
                    default:
                        backend.FlushAsync().Wait();
                        flushed = new ByteModel(model.Length);
                        flushed.Write(0, model.Bytes);
                        touched.Clear();
                        resizedSinceFlush = false;
                        break;
                }

                if (recorder.PendingCount == 0)
                    continue;
                for (int k = 0; k < 2; k++)
                {
                    crashes++;
                    VerifyCrashImage(dir, recorder.Crash(random), lazy, withBacking, resizedSinceFlush ? null : flushed, touched, $"step {step} crash {k}");
                }
            }
        }
        finally
        {
            backend.DisposeAsync().Wait();
            graph.DisposeAsync().Wait();
        }
        Assert.True(crashes > 20, $"only {crashes} crash images were tried");
        Qcow2Images.AssertClean(path);
    }

    private static void ZeroWholeClusters(ByteModel model, long offset, long length, int cs)
    {
        long start = (offset + cs - 1) / cs * cs;
        long end = (offset + length) / cs * cs;
        if (offset + length == model.Length)
            end = model.Length;
        if (end > start)
            model.Zero(start, end - start);
    }

    private static void VerifyCrashImage(TempDirectory dir, byte[] image, bool lazy, bool withBacking, ByteModel? flushed,
        List<(long Start, long End)> touched, string what)
    {
        string crash = dir.File("crash.qcow2");
        File.WriteAllBytes(crash, image);
        if (lazy)
        {
            // A dirty image is repaired when opened read-write, as QEMU does; afterwards it must be clean.
            var graph = Qcow2Images.NewGraph();
            try
            {
                var repaired = Qcow2Images.Open(graph, crash);
                repaired.DisposeAsync().Wait();
            }
            finally
            {
                graph.DisposeAsync().Wait();
            }
        }
        var check = QemuImg.Check(crash, "qcow2");
        Assert.True(check.ExitCode is 0 or 3, $"{what}: qemu-img check exit {check.ExitCode}\n{check.Stdout}\n{check.Stderr}");

        // Block opens it too, and reads what QEMU reads.
        var blockGraph = Qcow2Images.NewGraph();
        byte[] ours;
        try
        {
            var backend = Qcow2Images.Open(blockGraph, crash, readOnly: true);
            ours = Qcow2Images.ReadAll(backend);
            backend.DisposeAsync().Wait();
        }
        finally
        {
            blockGraph.DisposeAsync().Wait();
        }
        var oracle = Qcow2Images.OracleRead(crash, dir);
        Assert.True(ours.AsSpan().SequenceEqual(oracle), $"{what}: Block and qemu-img read the crash image differently");

        if (flushed is null)
            return;
        for (long pos = 0; pos < Math.Min(flushed.Length, oracle.Length); pos += 512)
        {
            long end = Math.Min(pos + 512, Math.Min(flushed.Length, oracle.Length));
            if (touched.Any(t => t.Start < end && pos < t.End))
                continue;
            Assert.True(flushed.Slice(pos, (int)(end - pos)).SequenceEqual(oracle.AsSpan((int)pos, (int)(end - pos))),
                $"{what}: flushed data at {pos} was lost");
        }
        _ = withBacking;
    }
}
