using Block.Graph;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Qcow2.Tests;

/// <summary>
/// qcow2 against a flat byte model: random sequences of writes, write-zeroes, discards, compressed writes, flushes,
/// resizes and reopens read back exactly as the model says, and every sequence leaves an image <c>qemu-img check</c>
/// finds clean and reads identically.
/// </summary>
public class ModelTests
{
    private const long InitialSize = 3L << 20;

    public abstract record Op;

    public sealed record WriteOp(long Offset, int Length, int Seed) : Op;

    public sealed record ZeroOp(long Offset, int Length, bool MayUnmap) : Op;

    public sealed record DiscardOp(long Offset, int Length) : Op;

    /// <summary>A compressed write of whole cluster <see cref="Cluster"/> (modulo the current size).</summary>
    public sealed record CompressedOp(int Cluster, bool Compressible, int Seed) : Op;

    public sealed record FlushOp : Op;

    public sealed record ReopenOp : Op;

    /// <summary>Resize to <see cref="Sectors"/> × 512 bytes.</summary>
    public sealed record ResizeOp(int Sectors) : Op;

    private static Gen<(long Offset, int Length)> Range() =>
        from offset in Gen.Choose(0, (int)InitialSize - 1)
        from length in Gen.Frequency((4, Gen.Choose(1, 8192)), (2, Gen.Choose(8192, 200_000)), (1, Gen.Choose(0, 3)))
        select ((long)offset, length);

    private static Gen<Op> OpGen() => Gen.Frequency(
        (6, from r in Range() from seed in Gen.Choose(1, int.MaxValue) select (Op)new WriteOp(r.Offset, r.Length, seed)),
        (2, from r in Range() from unmap in Gen.Elements(true, false) select (Op)new ZeroOp(r.Offset, r.Length, unmap)),
        (2, from r in Range() select (Op)new DiscardOp(r.Offset, r.Length)),
        (2, from c in Gen.Choose(0, 1000) from z in Gen.Elements(true, false) from seed in Gen.Choose(1, int.MaxValue) select (Op)new CompressedOp(c, z, seed)),
        (1, Gen.Constant((Op)new FlushOp())),
        (1, Gen.Constant((Op)new ReopenOp())),
        (1, from s in Gen.Choose(2048, 8192) select (Op)new ResizeOp(s)));

    /// <summary>Image layouts: cluster sizes, versions, refcount widths, extended L2, lazy refcounts, compression, a backing file.</summary>
    public static TheoryData<string, bool> Layouts() => new()
    {
        { "cluster_size=65536", false },
        { "cluster_size=65536", true },
        { "cluster_size=4096,refcount_bits=1", false },
        { "cluster_size=512,refcount_bits=64", true },
        { "cluster_size=65536,extended_l2=on", true },
        { "cluster_size=16384,extended_l2=on,compression_type=zstd", false },
        { "cluster_size=65536,lazy_refcounts=on,refcount_bits=8", true },
        { "compat=0.10,cluster_size=65536", false },
        { "compat=0.10,cluster_size=4096", true },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Random_operation_sequences_match_the_byte_model_and_check_clean(string options, bool backing)
    {
        var property = Prop.ForAll(Gen.ListOf(OpGen(), 30).ToArbitrary(), ops => RunSequence([.. ops], options, backing));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(8), property);
    }

    /// <remarks>
    /// Found by FsCheck (seed 2552198269820870774,5755310308908270835): the zeroing's tail ends inside the compressed
    /// cluster 93, so it does not read as zeroes, and the whole request is written as zero buffers, allocating cluster
    /// 92; a compressed write there is then refused by QEMU 7.2 and by us alike. The model took cluster 92 as free.
    /// </remarks>
    [Fact]
    public void An_unaligned_write_zeroes_that_becomes_a_write_leaves_its_clusters_refusing_compression() =>
        RunSequence(
        [
            new CompressedOp(93, Compressible: true, Seed: 238539532),
            new ZeroOp(1386144, 144343, MayUnmap: false),
            new CompressedOp(92, Compressible: true, Seed: 1343508499),
        ], "cluster_size=16384,extended_l2=on,compression_type=zstd", withBacking: false);

    internal static void RunSequence(Op[] ops, string options, bool withBacking)
    {
        using var dir = new TempDirectory();
        string path = dir.File("top.qcow2");
        var model = new ByteModel(InitialSize);
        byte[] backingData = [];
        if (withBacking)
        {
            string basePath = dir.File("base.raw");
            backingData = Patterns.Random((int)InitialSize - 65536, 77);
            File.WriteAllBytes(basePath, backingData);
            QemuImg.Create("qcow2", path, InitialSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"{options},backing_file=base.raw,backing_fmt=raw");
            model.Write(0, backingData);
        }
        else
        {
            QemuImg.Create("qcow2", path, InitialSize.ToString(System.Globalization.CultureInfo.InvariantCulture), options);
        }
        bool v2 = options.Contains("compat=0.10", StringComparison.Ordinal);
        int cs = options.Contains("cluster_size=4096", StringComparison.Ordinal) ? 4096
            : options.Contains("cluster_size=512,", StringComparison.Ordinal) ? 512
            : options.Contains("cluster_size=16384", StringComparison.Ordinal) ? 16384 : 65536;
        var states = new ClusterStates(cs, options.Contains("extended_l2=on", StringComparison.Ordinal));

        var graph = Qcow2Images.NewGraph();
        var backend = Qcow2Images.Open(graph, path);
        int step = 0;
        try
        {
            foreach (var op in ops)
            {
                step++;
                long size = model.Length;
                switch (op)
                {
                    case WriteOp w:
                    {
                        long offset = w.Offset % size;
                        int length = (int)Math.Min(w.Length, size - offset);
                        var data = Patterns.Random(length, w.Seed);
                        backend.WriteAsync(offset, data).Wait();
                        model.Write(offset, data);
                        states.Written(offset, length);
                        break;
                    }
                    case ZeroOp z:
                    {
                        long offset = z.Offset % size;
                        int length = (int)Math.Min(z.Length, size - offset);
                        backend.WriteZeroesAsync(offset, length, z.MayUnmap ? RequestFlags.MayUnmap : RequestFlags.None).Wait();
                        model.Zero(offset, length);
                        states.Zeroed(offset, length, size, z.MayUnmap, v2 && withBacking, v2 && !withBacking);
                        break;
                    }
                    case DiscardOp d:
                    {
                        long offset = d.Offset % size;
                        int length = (int)Math.Min(d.Length, size - offset);
                        backend.DiscardAsync(offset, length).Wait();
                        // Only whole clusters are discarded (and the partial cluster at the end of the disk).
                        long start = (offset + cs - 1) / cs * cs;
                        long end = (offset + length) / cs * cs;
                        if (offset + length == size)
                            end = size;
                        for (long c = start; c < end; c += cs)
                        {
                            long n = Math.Min(cs, size - c);
                            if (v2)
                            {
                                // Version 2 has no zero flag: the backing file shows through again.
                                model.Zero(c, n);
                                if (c < backingData.Length)
                                    model.Write(c, backingData.AsSpan((int)c, (int)Math.Min(n, backingData.Length - c)));
                            }
                            else
                            {
                                model.Zero(c, n);
                            }
                            states.Discarded(c);
                        }
                        break;
                    }
                    case CompressedOp c:
                    {
                        long clusters = (size + cs - 1) / cs;
                        long offset = c.Cluster % clusters * cs;
                        int length = (int)Math.Min(cs, size - offset);
                        var data = c.Compressible ? Patterns.Fill(length, (byte)c.Seed) : Patterns.Random(length, c.Seed);
                        // Data that does not compress is written normally, wherever it goes (as QEMU does).
                        // (A partial last cluster padded with zeroes may compress even so.)
                        bool? allowed = c.Compressible ? states.CanCompress(offset) : length == cs ? true : null;
                        try
                        {
                            backend.WriteAsync(offset, data, RequestFlags.Compressed).Wait();
                            Assert.True(allowed != false, $"compressed write at {offset} should have been refused");
                            model.Write(offset, data);
                            states.Compressed(offset, stored: !c.Compressible, known: c.Compressible || length == cs);
                        }
                        catch (BlockException e) when (e.Errno == Errno.EIO && allowed != true)
                        {
                            // QEMU refuses to compress over allocated clusters; nothing changed.
                        }
                        break;
                    }
                    case FlushOp:
                        backend.FlushAsync().Wait();
                        break;
                    case ReopenOp:
                        backend.DisposeAsync().Wait();
                        backend = Qcow2Images.Open(graph, path);
                        break;
                    case ResizeOp r:
                    {
                        if (v2 && withBacking)
                            break; // Version 2 cannot hide the backing file beyond the old end; not modelled.
                        long newSize = r.Sectors * 512L;
                        backend.TruncateAsync(newSize).Wait();
                        long old = model.Length;
                        model.Resize(newSize);
                        states.Resized(old, newSize);
                        break;
                    }
                }
            }
            var all = Qcow2Images.ReadAll(backend);
            Assert.Equal(model.Length, all.LongLength);
            Assert.Equal(-1, model.FirstMismatch(0, all));
        }
        catch (Exception e) when (e is not SequenceException)
        {
            throw new SequenceException($"{options} backing={withBacking} step {step} of: {string.Join("; ", ops.Select(o => o.ToString()))}", e);
        }
        finally
        {
            backend.DisposeAsync().Wait();
            graph.DisposeAsync().Wait();
        }
        Qcow2Images.AssertClean(path);
        var oracle = Qcow2Images.OracleRead(path, dir);
        Assert.Equal(-1, model.FirstMismatch(0, oracle));
    }

    private sealed class SequenceException(string message, Exception inner) : Exception(message, inner);

    /// <summary>
    /// What the model knows about each cluster's L2 entry: whether it has a host cluster (compressed writes to it are
    /// refused) or holds compressed data; null where it cannot know (subcluster-granular zeroing).
    /// </summary>
    private sealed class ClusterStates(int clusterSize, bool extendedL2)
    {
        private enum State { None, Host, Compressed, Unknown }

        private readonly Dictionary<long, State> _states = [];

        private State Get(long c) => _states.GetValueOrDefault(c, State.None);

        /// <summary>True if a compressed write must succeed, false if it must be refused, null if either is right.</summary>
        public bool? CanCompress(long offset) => Get(offset / clusterSize) switch
        {
            State.None => true,
            State.Unknown => null,
            _ => false,
        };

        public void Written(long offset, long length)
        {
            if (length == 0)
                return;
            for (long c = offset / clusterSize; c <= (offset + length - 1) / clusterSize; c++)
                _states[c] = State.Host;
        }

        public void Compressed(long offset, bool stored, bool known) =>
            _states[offset / clusterSize] = !known ? State.Unknown : stored ? State.Host : State.Compressed;

        public void Zeroed(long offset, long length, long size, bool unmap, bool fallsBackToWrites, bool deallocates)
        {
            if (length == 0)
                return;
            // A request whose head or tail is not aligned to what qcow2 zeroes in place (a subcluster, or a cluster)
            // is zeroed in place only if that head and tail read as zeroes already; otherwise QEMU (and we) write
            // zero buffers over the whole request, allocating every cluster in it. The model can't tell which.
            long granule = extendedL2 ? clusterSize / 32 : clusterSize;
            bool maybeWritten = offset % granule != 0 || ((offset + length) % granule != 0 && offset + length < size);
            for (long c = offset / clusterSize; c <= (offset + length - 1) / clusterSize; c++)
            {
                long start = c * clusterSize;
                bool whole = start >= offset && (start + clusterSize <= offset + length || offset + length >= size);
                if (maybeWritten && !fallsBackToWrites)
                    _states[c] = Get(c) == State.Host ? State.Host : State.Unknown;
                else if (fallsBackToWrites)
                    _states[c] = State.Host;
                else if (!whole && !extendedL2)
                {
                    // Part of a cluster: zero buffers are written, unless the rest of the cluster reads as zeroes
                    // already, when the whole cluster is zeroed (or, with unmap or on version 2, freed) as in QEMU.
                    _states[c] = State.Unknown;
                }
                else if (!whole)
                    _states[c] = Get(c) == State.None ? State.Unknown : Get(c) == State.Compressed ? State.Host : Get(c);
                else if (unmap || deallocates || Get(c) == State.Compressed)
                    _states[c] = State.None;
                else if (Get(c) == State.Unknown)
                    _states[c] = State.Unknown;
            }
        }

        public void Discarded(long clusterStart) => _states[clusterStart / clusterSize] = State.None;

        public void Resized(long old, long size)
        {
            long firstGone = (size + clusterSize - 1) / clusterSize;
            foreach (long c in _states.Keys.Where(c => c >= firstGone).ToList())
                _states.Remove(c);
            if (size > old && old % clusterSize != 0)
                _states[old / clusterSize] = Get(old / clusterSize) == State.None ? State.Unknown : Get(old / clusterSize);
        }
    }
}
