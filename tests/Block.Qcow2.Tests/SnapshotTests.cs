using Block.Graph;
using Block.Qapi;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Qcow2.Tests;

/// <summary>
/// Internal snapshots: random create/apply/delete interleaved with writes keep <c>qemu-img check</c> clean and every
/// snapshot's content equal to its model; QEMU reads ours and we read QEMU's.
/// </summary>
public class SnapshotTests
{
    private const long Size = 2L << 20;

    public abstract record Op;

    public sealed record WriteOp(long Offset, int Length, int Seed) : Op;

    public sealed record ZeroOp(long Offset, int Length) : Op;

    public sealed record CompressOp(int Cluster, int Seed) : Op;

    public sealed record CreateOp : Op;

    public sealed record ApplyOp(int Which) : Op;

    public sealed record DeleteOp(int Which) : Op;

    public sealed record ReopenOp : Op;

    private static Gen<Op> OpGen() => Gen.Frequency(
        (5, from o in Gen.Choose(0, (int)Size - 1) from l in Gen.Choose(1, 150_000) from s in Gen.Choose(1, int.MaxValue)
            select (Op)new WriteOp(o, (int)Math.Min(l, Size - o), s)),
        (1, from o in Gen.Choose(0, (int)Size - 1) from l in Gen.Choose(1, 150_000) select (Op)new ZeroOp(o, (int)Math.Min(l, Size - o))),
        (1, from c in Gen.Choose(0, 1000) from s in Gen.Choose(1, 255) select (Op)new CompressOp(c, s)),
        (3, Gen.Constant((Op)new CreateOp())),
        (2, from w in Gen.Choose(0, 100) select (Op)new ApplyOp(w)),
        (2, from w in Gen.Choose(0, 100) select (Op)new DeleteOp(w)),
        (1, Gen.Constant((Op)new ReopenOp())));

    [Theory]
    [InlineData("cluster_size=65536")]
    [InlineData("cluster_size=4096,refcount_bits=2")]
    [InlineData("cluster_size=65536,extended_l2=on")]
    [InlineData("compat=0.10,cluster_size=16384")]
    public void Random_snapshot_operations_keep_every_snapshot_equal_to_its_model(string options)
    {
        var property = Prop.ForAll(Gen.ListOf(OpGen(), 25).ToArbitrary(), ops => Run([.. ops], options));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(5), property);
    }

    private static void Run(Op[] ops, string options)
    {
        using var dir = new TempDirectory();
        string path = dir.File("snap.qcow2");
        QemuImg.Create("qcow2", path, Size.ToString(System.Globalization.CultureInfo.InvariantCulture), options);
        int cs = options.Contains("4096", StringComparison.Ordinal) ? 4096 : options.Contains("16384", StringComparison.Ordinal) ? 16384 : 65536;
        var model = new byte[Size];
        bool narrow = options.Contains("refcount_bits=2", StringComparison.Ordinal);
        var snapshots = new List<(string Id, byte[] Content)>();
        var graph = Qcow2Images.NewGraph();
        var backend = Qcow2Images.Open(graph, path);
        int step = 0;
        try
        {
            foreach (var op in ops)
            {
                step++;
                switch (op)
                {
                    case WriteOp w:
                        var data = Patterns.Random(w.Length, w.Seed);
                        backend.WriteAsync(w.Offset, data).Wait();
                        data.CopyTo(model, w.Offset);
                        break;
                    case ZeroOp z:
                        backend.WriteZeroesAsync(z.Offset, z.Length, RequestFlags.MayUnmap).Wait();
                        Array.Clear(model, (int)z.Offset, z.Length);
                        break;
                    case CompressOp c:
                    {
                        long offset = c.Cluster % (Size / cs) * cs;
                        var fill = Patterns.Fill(cs, (byte)c.Seed);
                        try
                        {
                            backend.WriteAsync(offset, fill, RequestFlags.Compressed).Wait();
                            fill.CopyTo(model, offset);
                        }
                        catch (BlockException e) when (e.Errno == Errno.EIO)
                        {
                            // Allocated already: compression refuses, nothing changes.
                        }
                        break;
                    }
                    case CreateOp:
                        try
                        {
                            var info = backend.Root!.CreateSnapshotAsync(new SnapshotInfo { Id = string.Empty, Name = $"s{step}", DateSec = 1_700_000_000 + step }).Wait();
                            snapshots.Add((info.Id, (byte[])model.Clone()));
                        }
                        catch (BlockException e) when (e.Errno == Errno.EINVAL && narrow)
                        {
                            // Narrow refcounts run out of room for another reference: refused, nothing changed.
                        }
                        break;
                    case ApplyOp a when snapshots.Count > 0:
                    {
                        var (id, content) = snapshots[a.Which % snapshots.Count];
                        try
                        {
                            backend.Root!.ApplySnapshotAsync(id).Wait();
                            content.CopyTo(model, 0);
                        }
                        catch (BlockException e) when (e.Errno == Errno.EINVAL && narrow)
                        {
                        }
                        break;
                    }
                    case DeleteOp d when snapshots.Count > 0:
                    {
                        int i = d.Which % snapshots.Count;
                        backend.Root!.DeleteSnapshotAsync(snapshots[i].Id, null).Wait();
                        snapshots.RemoveAt(i);
                        break;
                    }
                    case ReopenOp:
                        backend.DisposeAsync().Wait();
                        backend = Qcow2Images.Open(graph, path);
                        break;
                }
            }
            Assert.True(Qcow2Images.ReadAll(backend).AsSpan().SequenceEqual(model), $"active content differs after {string.Join("; ", ops)}");
            Assert.Equal(snapshots.Select(s => s.Id), backend.Root!.Snapshots.Select(s => s.Id));
        }
        finally
        {
            backend.DisposeAsync().Wait();
            graph.DisposeAsync().Wait();
        }
        var check = QemuImg.Check(path, "qcow2");
        Assert.True(check.ExitCode == 0, $"qemu-img check exit {check.ExitCode} after {string.Join("; ", ops)}\n{check.Stdout}{check.Stderr}");
        // QEMU sees every snapshot with the content we recorded.
        foreach (var (id, content) in snapshots)
        {
            string raw = dir.File($"snap-{id}.raw");
            QemuImg.Run("convert", "-f", "qcow2", "-O", "raw", "-l", $"snapshot.id={id}", path, raw).EnsureSuccess("qemu-img convert -l");
            Assert.True(File.ReadAllBytes(raw).AsSpan().SequenceEqual(content), $"snapshot {id} differs after {string.Join("; ", ops)}");
        }
        Assert.True(Qcow2Images.OracleRead(path, dir).AsSpan().SequenceEqual(model));
    }

    [Fact]
    public void Snapshots_qemu_img_made_are_listed_applied_and_deleted_by_Block()
    {
        using var dir = new TempDirectory();
        string path = dir.File("q.qcow2");
        QemuImg.Create("qcow2", path, "4M");
        QemuIo.RunChecked(path, "qcow2", "write -P 1 0 1M");
        QemuImg.Run("snapshot", "-c", "one", path).EnsureSuccess("snapshot -c");
        QemuIo.RunChecked(path, "qcow2", "write -P 2 512k 1M");
        QemuImg.Run("snapshot", "-c", "two", path).EnsureSuccess("snapshot -c");
        QemuIo.RunChecked(path, "qcow2", "write -P 3 0 64k");

        var graph = Qcow2Images.NewGraph();
        try
        {
            var backend = Qcow2Images.Open(graph, path);
            var list = backend.Root!.Snapshots;
            Assert.Equal(["one", "two"], list.Select(s => s.Name));
            Assert.Equal(["1", "2"], list.Select(s => s.Id));
            Assert.Equal(0, list[0].Icount);
            backend.Root.ApplySnapshotAsync("one").Wait();
            var all = Qcow2Images.ReadAll(backend);
            Assert.True(all.AsSpan(0, 1 << 20).IndexOfAnyExcept((byte)1) < 0);
            Assert.True(all.AsSpan(1 << 20).IndexOfAnyExcept((byte)0) < 0);
            backend.Root.DeleteSnapshotAsync(null, "two").Wait();
            backend.DisposeAsync().Wait();
        }
        finally
        {
            graph.DisposeAsync().Wait();
        }
        Qcow2Images.AssertClean(path);
        var listed = QemuImg.Run("snapshot", "-l", path).EnsureSuccess("snapshot -l").Stdout;
        Assert.Contains("one", listed, StringComparison.Ordinal);
        Assert.DoesNotContain("two", listed, StringComparison.Ordinal);
        QemuIo.RunChecked(path, "qcow2", "read -P 1 0 1M");
    }

    [Fact]
    public void Vm_state_written_before_a_snapshot_is_kept_with_it_and_leaves_the_active_image()
    {
        using var dir = new TempDirectory();
        string path = dir.File("vm.qcow2");
        QemuImg.Create("qcow2", path, "8M");
        var state = Patterns.Random(300_000, 5);
        var graph = Qcow2Images.NewGraph();
        try
        {
            var backend = Qcow2Images.Open(graph, path);
            var node = backend.Root!;
            node.WriteVmStateAsync(0, new Io.IoVector(state)).Wait();
            var info = node.CreateSnapshotAsync(new SnapshotInfo { Id = string.Empty, Name = "with-state", VmStateSize = state.Length }).Wait();
            Assert.Equal(state.Length, info.VmStateSize);
            // The active image no longer holds it.
            var after = new byte[state.Length];
            node.ReadVmStateAsync(0, new Io.IoVector(after)).Wait();
            Assert.True(after.AsSpan().IndexOfAnyExcept((byte)0) < 0);
            // Loading the snapshot brings it back (loadvm).
            node.ApplySnapshotAsync("with-state").Wait();
            node.ReadVmStateAsync(0, new Io.IoVector(after)).Wait();
            Assert.True(after.AsSpan().SequenceEqual(state));
            backend.DisposeAsync().Wait();
        }
        finally
        {
            graph.DisposeAsync().Wait();
        }
        Qcow2Images.AssertClean(path);
        var json = QemuImg.Info(path, "qcow2");
        Assert.Equal(300_000, json["snapshots"]![0]!["vm-state-size"]!.GetValue<long>());
    }
}
