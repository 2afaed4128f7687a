using Block.Graph;
using Block.Io;
using Microsoft.Win32.SafeHandles;

namespace Block.Drivers.Vvfat;

/// <summary>One open vvfat disk: reads are served from the volume's metadata in memory and from the host files; with
/// <c>rw</c>, writes go to an overlay that reads see first, and are committed to the host directory when the volume
/// they leave is consistent.</summary>
/// <remarks>
/// <para>
/// Host files are read when their clusters are, as QEMU does, through a small cache of open handles (the last
/// <see cref="MaxOpenFiles"/> files read), so a sequential copy opens each file once and a volume of many files holds
/// few descriptors. A file that cannot be opened or read fails the request with its path and the host's error; a file
/// shorter than at open reads as zeroes past its end.
/// </para>
/// <para>
/// With <c>rw</c>, after every write the volume is read back through the overlay (<see cref="FatVolumeReader"/>); when
/// it is consistent, what changed is committed to the host (<see cref="VvfatCommit"/>) and the node reads the rebuilt
/// volume from then on, so the guest's disk does not move under it. When it is not, nothing is committed and the
/// reason is kept (<see cref="PendingReason"/>) until a later write makes it consistent, as QEMU waits. Requests are
/// serialised in that mode, since a commit swaps the volume. Writes to the MBR and the boot sector are refused, as
/// QEMU refuses them. A commit the host refused halfway leaves the directory partly updated; the node then refuses
/// further writes with that error rather than guess.
/// </para>
/// </remarks>
internal sealed class VvfatNodeDriver : NodeDriver
{
    private const int MaxOpenFiles = 16;

    private readonly string _filename;
    private readonly VvfatOverlay? _overlay;
    private readonly object _stateLock = new();
    private VvfatVolume _volume;
    private long[] _extentEnds;
    private BlockException? _commitFailure;
    private readonly LinkedList<(HostEntry File, SafeFileHandle Handle)> _handles = new();
    private readonly object _handlesLock = new();
    private bool _disposed;

    public VvfatNodeDriver(BlockNode node, VvfatVolume volume, string filename, bool writable)
        : base(node)
    {
        _volume = volume;
        _filename = filename;
        _extentEnds = volume.Extents.Select(e => e.End).ToArray();
        if (writable)
            _overlay = new VvfatOverlay(volume.Geometry.LengthBytes);
    }

    /// <summary>Why the last write was not committed to the host (the volume was not consistent); null after a commit,
    /// or when nothing was written.</summary>
    public string? PendingReason { get; private set; }

    /// <summary>How many commits changed the host directory.</summary>
    public int Commits { get; private set; }

    public override BlockLimits Limits => _overlay is null ? base.Limits : new() { RequestAlignment = FatGeometry.SectorSize };

    public override long Length => _volume.Geometry.LengthBytes;

    public override string Filename => _filename;

    public override long? AllocatedSize => null;

    public override bool HasZeroInit => false;

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        try
        {
            if (_overlay is null)
            {
                Read(offset, buffers);
            }
            else
            {
                lock (_stateLock)
                    ReadThroughOverlay(offset, buffers);
            }
            return default;
        }
        catch (BlockException e)
        {
            return ValueTask.FromException(e);
        }
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        try
        {
            if (_overlay is null)
                throw new BlockException(Errno.EACCES, "Image is read-only");
            lock (_stateLock)
                Write(_overlay, offset, buffers);
            return default;
        }
        catch (BlockException e)
        {
            return ValueTask.FromException(e);
        }
    }

    private void Write(VvfatOverlay overlay, long offset, IoVector buffers)
    {
        if (_commitFailure is { } failure)
            throw new BlockException(failure.Errno, $"vvfat: writes are refused since a commit failed: {failure.Message}", failure);
        var g = _volume.Geometry;
        if (offset < g.PartitionOffset + FatGeometry.SectorSize)
            throw new BlockException(Errno.EPERM, "vvfat: tried to write to the protected MBR or boot sector");
        if (offset % FatGeometry.SectorSize != 0 || buffers.Length % FatGeometry.SectorSize != 0 || offset + buffers.Length > g.LengthBytes)
            throw new BlockException(Errno.EINVAL, $"vvfat: write of {buffers.Length} bytes at {offset} is not whole sectors of the disk");
        overlay.Write(offset, buffers);
        TryCommit(overlay);
    }

    private void TryCommit(VvfatOverlay overlay)
    {
        var root = FatVolumeReader.Read(_volume.Geometry, ReadView, out string? problem);
        PendingReason = problem;
        if (root is null)
            return;
        VvfatVolume? rebuilt;
        try
        {
            rebuilt = VvfatCommit.Run(_volume, root, overlay, ReadView);
        }
        catch (BlockException e)
        {
            _commitFailure = e;
            throw;
        }
        if (rebuilt is null)
            return;
        _volume = rebuilt;
        _extentEnds = rebuilt.Extents.Select(e => e.End).ToArray();
        Commits++;
        CloseHandles();
    }

    private void ReadView(long offset, Memory<byte> target) => ReadThroughOverlay(offset, target);

    /// <summary>Reads the disk as written: sectors from the overlay where written, the volume's elsewhere.</summary>
    private void ReadThroughOverlay(long offset, IoVector buffers)
    {
        var overlay = _overlay!;
        int done = 0;
        while (done < buffers.Length)
        {
            long at = offset + done;
            long sector = at / FatGeometry.SectorSize;
            int inSector = (int)(at % FatGeometry.SectorSize);
            int remaining = buffers.Length - done;
            long sectors = (inSector + (long)remaining + FatGeometry.SectorSize - 1) / FatGeometry.SectorSize;
            long run = overlay.RunLength(sector, sectors, out bool written);
            int n = (int)Math.Min(remaining, run * FatGeometry.SectorSize - inSector);
            var target = buffers.Slice(done, n);
            if (written)
            {
                long position = at;
                foreach (var segment in target)
                {
                    overlay.Read(position, segment.Span);
                    position += segment.Length;
                }
            }
            else
            {
                Read(at, target);
            }
            done += n;
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
                ReadFile(extent.File!, extent.FileOffset + within, target);
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

    private void CloseHandles()
    {
        lock (_handlesLock)
        {
            foreach (var (_, handle) in _handles)
                handle.Dispose();
            _handles.Clear();
        }
    }

    public override ValueTask DisposeAsync()
    {
        lock (_handlesLock)
            _disposed = true;
        CloseHandles();
        lock (_stateLock)
            _overlay?.Dispose();
        return default;
    }
}
