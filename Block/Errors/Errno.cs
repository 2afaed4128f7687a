namespace Block;

/// <summary>
/// Linux errno values that the block layer reports. Requests fail with one of these, exactly as QEMU's
/// coroutines return <c>-errno</c>, so that guest-facing error policies (report, ignore, enospc, stop)
/// and qemu-io's "<c>write failed: No space left on device</c>" lines can be reproduced.
/// </summary>
public enum Errno
{
    /// <summary>Success; never carried by an exception.</summary>
    None = 0,
    /// <summary>EPERM: operation not permitted (for example a write to a read-only node).</summary>
    EPERM = 1,
    /// <summary>ENOENT: no such file or directory.</summary>
    ENOENT = 2,
    /// <summary>EINTR: interrupted system call (retried internally, never surfaced).</summary>
    EINTR = 4,
    /// <summary>EIO: input/output error, also used for guest requests outside the device.</summary>
    EIO = 5,
    /// <summary>EBADF: bad file descriptor.</summary>
    EBADF = 9,
    /// <summary>EAGAIN: resource temporarily unavailable (a lock held by another process).</summary>
    EAGAIN = 11,
    /// <summary>ENOMEM: cannot allocate memory.</summary>
    ENOMEM = 12,
    /// <summary>EACCES: permission denied.</summary>
    EACCES = 13,
    /// <summary>EBUSY: device or resource busy.</summary>
    EBUSY = 16,
    /// <summary>EEXIST: file exists.</summary>
    EEXIST = 17,
    /// <summary>ENOTDIR: not a directory.</summary>
    ENOTDIR = 20,
    /// <summary>EISDIR: is a directory.</summary>
    EISDIR = 21,
    /// <summary>EINVAL: invalid argument.</summary>
    EINVAL = 22,
    /// <summary>ENOTTY: inappropriate ioctl for device (a CD-ROM ioctl on something that is not a drive).</summary>
    ENOTTY = 25,
    /// <summary>EFBIG: file too large.</summary>
    EFBIG = 27,
    /// <summary>ENOSPC: no space left on device.</summary>
    ENOSPC = 28,
    /// <summary>ESPIPE: illegal seek.</summary>
    ESPIPE = 29,
    /// <summary>EROFS: read-only file system.</summary>
    EROFS = 30,
    /// <summary>ERANGE: numerical result out of range.</summary>
    ERANGE = 34,
    /// <summary>EDEADLK: resource deadlock avoided (a wait that nothing could ever end).</summary>
    EDEADLK = 35,
    /// <summary>ENXIO: no such device or address (lseek past the last data).</summary>
    ENXIO = 6,
    /// <summary>E2BIG: argument list too long (a request larger than the layer allows).</summary>
    E2BIG = 7,
    /// <summary>EMLINK: too many links (a backing chain longer than allowed).</summary>
    EMLINK = 31,
    /// <summary>ELOOP: too many levels of symbolic links (a backing chain that loops).</summary>
    ELOOP = 40,
    /// <summary>ENOTSUP / EOPNOTSUPP: operation not supported.</summary>
    ENOTSUP = 95,
    /// <summary>ETIMEDOUT: connection timed out (a network protocol's server gave no answer within its timeout).</summary>
    ETIMEDOUT = 110,
    /// <summary>ENOMEDIUM: no medium found (a backend without a root node).</summary>
    ENOMEDIUM = 123,
    /// <summary>ECANCELED: operation canceled.</summary>
    ECANCELED = 125,
}

/// <summary>The messages glibc's <c>strerror</c> gives for <see cref="Errno"/> values.</summary>
public static class ErrnoText
{
    /// <summary>Returns glibc's text for <paramref name="errno"/>, as QEMU prints it.</summary>
    public static string Describe(Errno errno) => errno switch
    {
        Errno.None => "Success",
        Errno.EPERM => "Operation not permitted",
        Errno.ENOENT => "No such file or directory",
        Errno.EINTR => "Interrupted system call",
        Errno.EIO => "Input/output error",
        Errno.ENXIO => "No such device or address",
        Errno.E2BIG => "Argument list too long",
        Errno.EBADF => "Bad file descriptor",
        Errno.EAGAIN => "Resource temporarily unavailable",
        Errno.ENOMEM => "Cannot allocate memory",
        Errno.EACCES => "Permission denied",
        Errno.EBUSY => "Device or resource busy",
        Errno.EEXIST => "File exists",
        Errno.ENOTDIR => "Not a directory",
        Errno.EISDIR => "Is a directory",
        Errno.EINVAL => "Invalid argument",
        Errno.ENOTTY => "Inappropriate ioctl for device",
        Errno.EFBIG => "File too large",
        Errno.ENOSPC => "No space left on device",
        Errno.ESPIPE => "Illegal seek",
        Errno.EROFS => "Read-only file system",
        Errno.ERANGE => "Numerical result out of range",
        Errno.EDEADLK => "Resource deadlock avoided",
        Errno.EMLINK => "Too many links",
        Errno.ELOOP => "Too many levels of symbolic links",
        Errno.ENOTSUP => "Operation not supported",
        Errno.ETIMEDOUT => "Connection timed out",
        Errno.ENOMEDIUM => "No medium found",
        Errno.ECANCELED => "Operation canceled",
        _ => $"Unknown error {(int)errno}",
    };
}
