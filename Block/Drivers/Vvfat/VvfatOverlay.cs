using Microsoft.Win32.SafeHandles;

namespace Block.Drivers.Vvfat;

/// <summary>
/// The sectors a <c>rw</c> vvfat disk has been written: their bytes in a temporary sparse file the length of the disk,
/// and which sectors they are in a bitmap in memory (one bit a sector: 128 KiB for the 504 MiB hard disk).
/// </summary>
/// <remarks>
/// QEMU keeps these writes in a temporary qcow image backed by the synthesized disk. A qcow image is a sparse store of
/// written sectors with its own metadata to keep; the disk is at most 504 MiB, so a sparse file of the same length plus a
/// bitmap is the same thing with nothing to keep, needs no image format from another package, and reads and writes
/// with one <c>pread</c>/<c>pwrite</c>. The file is created in the temporary directory with delete-on-close, so it is
/// gone when the node closes, whatever happens. Sectors whose bytes are committed to the host are forgotten
/// (<see cref="Forget"/>): reads go back to the disk built from the directory, and a later write reuses their place.
/// </remarks>
internal sealed class VvfatOverlay : IDisposable
{
    private const int SectorSize = FatGeometry.SectorSize;

    private readonly SafeFileHandle _file;
    private readonly ulong[] _written;
    private readonly long _sectors;

    public VvfatOverlay(long length)
    {
        _sectors = length / SectorSize;
        _written = new ulong[(_sectors + 63) / 64];
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"vvfat-overlay-{Guid.NewGuid():N}");
        try
        {
            _file = System.IO.File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose);
            RandomAccess.SetLength(_file, length);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BlockException(Errno.EIO, $"vvfat: could not create the temporary file for writes in {System.IO.Path.GetTempPath()}: {e.Message}", e);
        }
    }

    /// <summary>True when sector <paramref name="sector"/> holds written bytes.</summary>
    public bool IsWritten(long sector) => (_written[sector >> 6] & (1UL << (int)(sector & 63))) != 0;

    /// <summary>True when any sector of <paramref name="count"/> from <paramref name="first"/> is written.</summary>
    public bool AnyWritten(long first, long count)
    {
        for (long s = first; s < first + count; s++)
        {
            if ((s & 63) == 0 && s + 64 <= first + count)
            {
                if (_written[s >> 6] != 0)
                    return true;
                s += 63;
                continue;
            }
            if (IsWritten(s))
                return true;
        }
        return false;
    }

    /// <summary>How many sectors from <paramref name="first"/> (at most <paramref name="max"/>) share its written state.</summary>
    public long RunLength(long first, long max, out bool written)
    {
        written = IsWritten(first);
        long n = 1;
        while (n < max && IsWritten(first + n) == written)
            n++;
        return n;
    }

    /// <summary>Stores whole sectors at <paramref name="offset"/> (a multiple of the sector size), segment by segment.</summary>
    public void Write(long offset, Block.Io.IoVector data)
    {
        try
        {
            long position = offset;
            foreach (var segment in data)
            {
                RandomAccess.Write(_file, segment.Span, position);
                position += segment.Length;
            }
        }
        catch (IOException e)
        {
            throw new BlockException(Errno.EIO, $"vvfat: could not keep a write in the temporary file: {e.Message}", e);
        }
        for (long s = offset / SectorSize; s < (offset + data.Length) / SectorSize; s++)
            _written[s >> 6] |= 1UL << (int)(s & 63);
    }

    /// <summary>Reads written sectors' bytes.</summary>
    public void Read(long offset, Span<byte> target)
    {
        int done = 0;
        while (done < target.Length)
        {
            int got;
            try
            {
                got = RandomAccess.Read(_file, target[done..], offset + done);
            }
            catch (IOException e)
            {
                throw new BlockException(Errno.EIO, $"vvfat: could not read the temporary file for writes: {e.Message}", e);
            }
            if (got == 0)
            {
                target[done..].Clear();
                return;
            }
            done += got;
        }
    }

    /// <summary>Forgets <paramref name="count"/> sectors from <paramref name="first"/>: reads go to the disk below again.</summary>
    public void Forget(long first, long count)
    {
        for (long s = first; s < Math.Min(first + count, _sectors); s++)
            _written[s >> 6] &= ~(1UL << (int)(s & 63));
    }

    public void Dispose() => _file.Dispose();
}
