using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Options;
using Block.Qapi;

namespace Block.Qcow2.Tests;

/// <summary>
/// What the storage under an image has made durable, and what it has only been asked to write since the last flush:
/// from that, images as a crash could leave them — any subset of the unflushed writes persisted, each torn at sector
/// granularity.
/// </summary>
internal sealed class CrashRecorder
{
    private readonly object _lock = new();
    private readonly List<(long Offset, byte[]? Data, long Length)> _pending = [];
    /// <summary>Every write since <see cref="Start"/>, flushed or not, in the order they were sent.</summary>
    private readonly List<(long Offset, byte[]? Data, long Length)> _history = [];
    private byte[] _durable = [];
    private byte[] _start = [];

    /// <summary>Writes not yet flushed.</summary>
    public int PendingCount
    {
        get
        {
            lock (_lock)
                return _pending.Count;
        }
    }

    /// <summary>Writes since <see cref="Start"/>, flushed or not.</summary>
    public int HistoryCount
    {
        get
        {
            lock (_lock)
                return _history.Count;
        }
    }

    public void Start(byte[] content)
    {
        lock (_lock)
        {
            _durable = content;
            _start = content;
            _pending.Clear();
            _history.Clear();
        }
    }

    public void Write(long offset, byte[] data) => Add((offset, data, data.Length));

    public void Zero(long offset, long length) => Add((offset, null, length));

    /// <summary>A resize, recorded as a write of nothing at the new end (the file may or may not have changed size).</summary>
    public void Resize(long length) => Add((length, null, -1));

    private void Add((long Offset, byte[]? Data, long Length) write)
    {
        lock (_lock)
        {
            _pending.Add(write);
            _history.Add(write);
        }
    }

    public void Flushed()
    {
        lock (_lock)
        {
            var image = new List<byte>(_durable);
            foreach (var p in _pending)
                Apply(image, p, sectorMask: null);
            _durable = [.. image];
            _pending.Clear();
        }
    }

    /// <summary>An image a crash now could leave: each pending write persisted or not, persisted ones possibly torn.</summary>
    public byte[] Crash(Random random)
    {
        lock (_lock)
        {
            var image = new List<byte>(_durable);
            foreach (var p in _pending)
            {
                if (random.Next(2) == 0)
                    continue;
                Func<long, bool>? mask = random.Next(3) == 0 ? _ => random.Next(10) < 7 : null;
                Apply(image, p, mask);
            }
            return [.. image];
        }
    }

    /// <summary>The image if only the first <paramref name="count"/> writes since the last flush had reached the storage, whole and in order.</summary>
    public byte[] Prefix(int count)
    {
        lock (_lock)
        {
            var image = new List<byte>(_durable);
            foreach (var p in _pending.Take(count))
                Apply(image, p, sectorMask: null);
            return [.. image];
        }
    }

    /// <summary>
    /// The images if only the first 0, 1, … <see cref="HistoryCount"/> writes since <see cref="Start"/> had reached
    /// the storage, whole and in order, flushes or not: a crash at any point of the sequence, where
    /// <see cref="Prefix"/> only reaches back to the last flush.
    /// </summary>
    /// <remarks>Each image is the one before it with one more write, so every write is applied once.</remarks>
    public IEnumerable<byte[]> HistoryPrefixes()
    {
        List<(long Offset, byte[]? Data, long Length)> history;
        List<byte> image;
        lock (_lock)
        {
            history = [.. _history];
            image = new List<byte>(_start);
        }
        yield return [.. image];
        foreach (var p in history)
        {
            Apply(image, p, sectorMask: null);
            yield return [.. image];
        }
    }

    private static void Apply(List<byte> image, (long Offset, byte[]? Data, long Length) p, Func<long, bool>? sectorMask)
    {
        if (p.Length < 0)
        {
            long length = p.Offset;
            if (length < image.Count)
                image.RemoveRange((int)length, image.Count - (int)length);
            else
                image.AddRange(new byte[length - image.Count]);
            return;
        }
        long end = p.Offset + p.Length;
        if (end > image.Count)
            image.AddRange(new byte[end - image.Count]);
        for (long sector = p.Offset / 512; sector * 512 < end; sector++)
        {
            if (sectorMask != null && !sectorMask(sector))
                continue;
            long from = Math.Max(sector * 512, p.Offset);
            long to = Math.Min((sector + 1) * 512, end);
            for (long i = from; i < to; i++)
                image[(int)i] = p.Data is null ? (byte)0 : p.Data[i - p.Offset];
        }
    }
}

/// <summary>Options of the <c>crash-recorder</c> test filter.</summary>
internal sealed record BlockdevOptionsCrashRecorder : BlockdevOptions
{
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsCrashRecorder(BlockdevRef file)
    {
        Driver = "crash-recorder";
        File = file;
    }

    public BlockdevRef File { get; init; }

    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences
    {
        get { yield return new("file", File); }
    }
}

/// <summary>A filter that passes everything to its file and tells a <see cref="CrashRecorder"/> what was written and flushed.</summary>
internal sealed class CrashRecorderDriver(CrashRecorder recorder) : BlockDriver
{
    public override string Name => "crash-recorder";

    public override BlockDriverKind Kind => BlockDriverKind.Filter;

    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) =>
        new BlockdevOptionsCrashRecorder(reader.RequiredRef("file", parser));

    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsCrashRecorder)context.Options;
        var child = await context.OpenChildAsync("file", options.File, ChildRole.Filtered | ChildRole.Primary, cancellationToken).ConfigureAwait(false);
        var content = new byte[child.Node.Length];
        await child.Node.ReadAsync(0, content.AsMemory()).ConfigureAwait(false);
        recorder.Start(content);
        return new Node(context.Node, child.Node, recorder);
    }

    private sealed class Node(BlockNode node, BlockNode file, CrashRecorder recorder) : NodeDriver(node)
    {
        public override long Length => file.Length;

        public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags) => file.ReadAsync(offset, buffers, flags);

        public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
        {
            recorder.Write(offset, buffers.ToArray());
            return file.WriteAsync(offset, buffers, flags);
        }

        public override ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
        {
            recorder.Zero(offset, length);
            return file.WriteZeroesAsync(offset, length, flags);
        }

        public override ValueTask DiscardAsync(long offset, long length)
        {
            recorder.Zero(offset, length);
            return file.DiscardAsync(offset, length);
        }

        public override async ValueTask FlushToDiskAsync()
        {
            await file.FlushAsync().ConfigureAwait(false);
            recorder.Flushed();
        }

        public override ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact)
        {
            recorder.Resize(length);
            return file.TruncateAsync(length, preallocation, exact);
        }

        public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero) =>
            new(new BlockStatus(BlockStatusFlags.Raw | BlockStatusFlags.OffsetValid, length, offset, file));
    }
}
