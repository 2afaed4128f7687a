namespace Block.Io;

/// <summary>
/// Where and how the blocking system calls of a file node run: on the caller's thread, on a bounded pool of
/// dedicated threads, or (later) through io_uring. The file driver is written once against this seam.
/// </summary>
/// <remarks>
/// <para>Descriptors are plain integers: the file node owns the <see cref="Microsoft.Win32.SafeHandles.SafeFileHandle"/>
/// and is drained before it closes it, so no request can reach a closed descriptor and the engines skip the handle
/// reference counting the BCL pays on every call.</para>
/// <para>Every method either completes with the full result or fails with a <see cref="BlockException"/> carrying
/// the errno; <c>EINTR</c> and short writes are retried inside.</para>
/// </remarks>
public interface IIoEngine
{
    /// <summary>The engine's name as the <c>aio</c> option and <c>blk bench -i</c> spell it.</summary>
    string Name { get; }

    /// <summary>
    /// Reads into <paramref name="buffers"/> from <paramref name="offset"/>, retrying short reads until the vector is
    /// full or the end of the file is reached.
    /// </summary>
    /// <returns>The bytes read; fewer than requested only at the end of the file.</returns>
    ValueTask<int> ReadAsync(int fd, IoVector buffers, long offset);

    /// <summary>
    /// <see cref="ReadAsync"/> on a descriptor opened with <c>O_DIRECT</c>: the data never comes from the page cache.
    /// </summary>
    /// <remarks>
    /// An engine that serves cached reads on the caller's thread (<see cref="ThreadsIoEngine"/>) must not try that
    /// here: a direct read with <c>RWF_NOWAIT</c> still waits for the disk, so the caller's thread would block.
    /// </remarks>
    ValueTask<int> ReadDirectAsync(int fd, IoVector buffers, long offset) => ReadAsync(fd, buffers, offset);

    /// <summary>Writes all of <paramref name="buffers"/> at <paramref name="offset"/>.</summary>
    ValueTask WriteAsync(int fd, IoVector buffers, long offset);

    /// <summary><c>fdatasync</c> (or <c>fsync</c> when <paramref name="dataOnly"/> is false).</summary>
    ValueTask FlushAsync(int fd, bool dataOnly);

    /// <summary>
    /// <c>sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)</c>: starts write-out of the dirty pages in the
    /// range (0 bytes: to the end of the file) and completes without waiting for it. A hint: it makes nothing durable.
    /// </summary>
    ValueTask StartWritebackAsync(int fd, long offset, long length);

    /// <summary><c>fallocate(fd, mode, offset, length)</c>: hole punching, zero ranges and preallocation.</summary>
    ValueTask FallocateAsync(int fd, int mode, long offset, long length);
}
