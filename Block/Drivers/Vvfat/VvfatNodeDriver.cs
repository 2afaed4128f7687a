using Block.Graph;
using Block.Io;
using Microsoft.Win32.SafeHandles;

namespace Block.Drivers.Vvfat;

/// <summary>One open vvfat disk: reads are served from the volume's metadata in memory and from the host files.</summary>
/// <remarks>
/// Host files are read when their clusters are, as QEMU does, through a small cache of open handles (the last
/// <see cref="MaxOpenFiles"/> files read), so a sequential copy opens each file once and a volume of many files holds
/// few descriptors. A file that cannot be opened or read fails the request with its path and the host's error; a file
/// shorter than at open reads as zeroes past its end.
/// </remarks>
internal sealed class VvfatNodeDriver : NodeDriver
{
    private const int MaxOpenFiles = 16;

    private readonly VvfatVolume _volume;
    private readonly string _filename;
    private readonly long[] _extentEnds;
    private readonly LinkedList<(HostEntry File, SafeFileHandle Handle)> _handles = new();
    private readonly object _handlesLock = new();
    private bool _disposed;

    public VvfatNodeDriver(BlockNode node, VvfatVolume volume, string filename)
        : base(node)
    {
        _volume = volume;
        _filename = filename;
        _extentEnds = volume.Extents.Select(e => e.End).ToArray();
    }

    public override long Length => _volume.Geometry.LengthBytes;

    public override string Filename => _filename;

    public override long? AllocatedSize => null;

    public override bool HasZeroInit => false;

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        try
        {
            Read(offset, buffers);
            return default;
        }
        catch (BlockException e)
        {
            return ValueTask.FromException(e);
        }
    }

    private void Read(long offset, IoVector buffers)
    {
        var extents = _volume.Extents;
        int index = Array.BinarySearch(_extentEnds, offset);
        // The first extent that ends after offset.
        index = index >= 0 ? index + 1 : ~index;
        int done = 0;
        while (done < buffers.Length)
        {
            long at = offset + done;
            int remaining = buffers.Length - done;
            if (index >= extents.Count || extents[index].Offset >= at + remaining)
            {
                buffers.Slice(done).Clear();
                return;
            }
            var extent = extents[index];
            if (extent.Offset > at)
            {
                int gap = (int)(extent.Offset - at);
                buffers.Slice(done, gap).Clear();
                done += gap;
                continue;
            }
            int n = (int)Math.Min(remaining, extent.End - at);
            var target = buffers.Slice(done, n);
            long within = at - extent.Offset;
            if (extent.Bytes is { } bytes)
                target.CopyFrom(bytes.AsSpan((int)within, n));
            else
                ReadFile(extent.File!, within, target);
            done += n;
            index++;
        }
    }

    private void ReadFile(HostEntry file, long position, IoVector target)
    {
        var handle = Handle(file);
        try
        {
            ReadFile(file, handle, position, target);
        }
        finally
        {
            handle.DangerousRelease();
        }
    }

    private static void ReadFile(HostEntry file, SafeFileHandle handle, long position, IoVector target)
    {
        foreach (var segment in target)
        {
            var span = segment.Span;
            int filled = 0;
            while (filled < span.Length && position + filled < file.Size)
            {
                int want = (int)Math.Min(span.Length - filled, file.Size - position - filled);
                int got;
                try
                {
                    got = RandomAccess.Read(handle, span.Slice(filled, want), position + filled);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new BlockException(Errno.EIO, $"vvfat: could not read '{file.Path}': {e.Message}", e);
                }
                if (got == 0)
                    break;
                filled += got;
            }
            span[filled..].Clear();
            position += span.Length;
        }
    }

    private SafeFileHandle Handle(HostEntry file)
    {
        lock (_handlesLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            for (var node = _handles.First; node != null; node = node.Next)
            {
                if (node.Value.File == file)
                {
                    _handles.Remove(node);
                    _handles.AddFirst(node);
                    return AddReference(node.Value.Handle);
                }
            }
            SafeFileHandle handle;
            try
            {
                handle = System.IO.File.OpenHandle(file.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                var errno = e is UnauthorizedAccessException ? Errno.EACCES : e is FileNotFoundException or DirectoryNotFoundException ? Errno.ENOENT : Errno.EIO;
                throw new BlockException(errno, $"vvfat: could not open '{file.Path}': {e.Message}", e);
            }
            _handles.AddFirst((file, handle));
            if (_handles.Count > MaxOpenFiles)
            {
                // Readers hold a reference taken under this lock, so an evicted handle closes when the last one is done.
                var last = _handles.Last!;
                _handles.RemoveLast();
                last.Value.Handle.Dispose();
            }
            return AddReference(handle);
        }
    }

    private static SafeFileHandle AddReference(SafeFileHandle handle)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        return handle;
    }

    public override ValueTask DisposeAsync()
    {
        lock (_handlesLock)
        {
            _disposed = true;
            foreach (var (_, handle) in _handles)
                handle.Dispose();
            _handles.Clear();
        }
        return default;
    }
}
