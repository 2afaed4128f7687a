using Block.Drivers.File;
using Block.Graph;
using Block.Options;
using Block.Qcow2.Tests;
using Block.TestSupport;

namespace Block.Formats.Tests;

/// <summary>
/// Guest writes sent to an image through the crash recorder, and the files a crash after each prefix of the writes the
/// format sent to its file (flushes or not) would leave, each with the guest content before and after the guest write
/// that was in flight.
/// </summary>
/// <remarks>
/// Every prefix, not only those since the last flush: a format that flushes between its metadata steps (vhdx's log)
/// must be tested at each step, and one that never flushes (vpc) across the whole sequence.
/// </remarks>
internal sealed class CrashPrefixes
{
    private readonly CrashRecorder _recorder;
    private readonly int[] _boundaries;
    private readonly List<(long Offset, byte[] Data)> _writes;
    private readonly byte[] _initial;

    private CrashPrefixes(CrashRecorder recorder, int[] boundaries, List<(long Offset, byte[] Data)> writes, byte[] initial, int total)
    {
        _recorder = recorder;
        _boundaries = boundaries;
        _writes = writes;
        _initial = initial;
        Count = total;
    }

    /// <summary>Writes the format sent to its file, from open to close.</summary>
    public int Count { get; }

    /// <summary>One crash: the file it leaves and the guest content around it.</summary>
    /// <param name="Count">Writes of the file that reached it.</param>
    /// <param name="GuestWrite">Guest writes complete before the crash.</param>
    /// <param name="Image">The file's bytes.</param>
    /// <param name="Before">The guest content after <paramref name="GuestWrite"/> writes.</param>
    /// <param name="After">The guest content after the write in flight (<paramref name="Before"/> if none was).</param>
    public sealed record Crash(int Count, int GuestWrite, byte[] Image, byte[] Before, byte[] After)
    {
        /// <summary>Asserts every byte of <paramref name="content"/> is its value before or after the write in flight.</summary>
        public void AssertReadsAsBeforeOrAfter(byte[] content, string what)
        {
            Assert.Equal(Before.Length, content.Length);
            if (content.AsSpan().SequenceEqual(Before) || content.AsSpan().SequenceEqual(After))
                return;
            // The message is made for the first byte that fails only: made for every byte of a torn write, it cost seconds.
            for (int i = 0; i < content.Length; i++)
            {
                if (content[i] != Before[i] && content[i] != After[i])
                    Assert.Fail($"{what}: prefix {Count} (guest write {GuestWrite}) reads 0x{content[i]:x2} at 0x{i:x}, neither 0x{Before[i]:x2} before nor 0x{After[i]:x2} after");
            }
        }
    }

    /// <summary>
    /// Opens <paramref name="image"/> through the recorder with <paramref name="format"/> (the format's options around
    /// its file), sends <paramref name="writes"/> one after the other and closes it.
    /// </summary>
    public static CrashPrefixes Record(string image, Func<BlockdevRef, BlockdevOptions> format, byte[] initial, IEnumerable<(long Offset, byte[] Data)> writes)
    {
        var recorder = new CrashRecorder();
        var registry = Block.Drivers.DriverRegistry.CreateDefault().AddFormats();
        registry.Add(new CrashRecorderDriver(recorder));
        var boundaries = new List<int>();
        var sent = new List<(long Offset, byte[] Data)>();
        using (var graph = new TestGraph(new BlockGraph(new BlockGraphOptions { Drivers = registry, ReferencePolicy = ImageReferencePolicy.Allow })))
        {
            var options = format(new BlockdevOptionsCrashRecorder(new BlockdevOptionsFile { Filename = image }));
            var backend = graph.Graph.OpenBackendAsync(options).AsTask().GetAwaiter().GetResult();
            boundaries.Add(recorder.HistoryCount);
            foreach (var w in writes)
            {
                BlockIo.Write(backend, w.Offset, w.Data);
                sent.Add(w);
                boundaries.Add(recorder.HistoryCount);
            }
        }
        return new CrashPrefixes(recorder, [.. boundaries], sent, initial, recorder.HistoryCount);
    }

    /// <summary>Random writes of up to <paramref name="maxLength"/> bytes, 512-byte aligned or not, into a disk of <paramref name="size"/> bytes.</summary>
    public static IEnumerable<(long Offset, byte[] Data)> RandomWrites(int seed, int count, int size, int maxLength)
    {
        var random = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            long offset = random.NextInt64(size - 1);
            if (i % 2 == 0)
                offset &= ~511L;
            int length = (int)Math.Min(size - offset, random.Next(1, maxLength));
            yield return (offset, Patterns.Random(length, seed * 1000 + i));
        }
    }

    /// <summary>The crash after each prefix, from none of the writes to all of them.</summary>
    public IEnumerable<Crash> All()
    {
        var before = (byte[])_initial.Clone();
        int guest = 0;
        using var images = _recorder.HistoryPrefixes().GetEnumerator();
        for (int count = 0; count <= Count; count++)
        {
            if (!images.MoveNext())
                throw new InvalidOperationException($"the recorder holds fewer than {count} writes");
            while (guest + 1 < _boundaries.Length && _boundaries[guest + 1] <= count)
            {
                Apply(before, _writes[guest]);
                guest++;
            }
            var snapshot = (byte[])before.Clone();
            var after = snapshot;
            if (guest < _writes.Count && count >= _boundaries[0])
            {
                after = (byte[])before.Clone();
                Apply(after, _writes[guest]);
            }
            yield return new Crash(count, guest, images.Current, snapshot, after);
        }
    }

    private static void Apply(byte[] content, (long Offset, byte[] Data) write) => write.Data.CopyTo(content, write.Offset);
}
