using Block.Graph;
using Block.Interop;

namespace Block.Locking;

/// <summary>
/// QEMU-compatible image locking on one open file: shared OFD byte-range locks on byte <c>100 + p</c> for each
/// permission p used and <c>200 + p</c> for each permission p not shared, checked against other processes' bytes.
/// </summary>
/// <remarks>
/// <para>Because Block takes the same bytes QEMU takes and tests the same bytes QEMU tests, a Block process and a
/// QEMU process refuse each other exactly as two QEMU processes do: while qemu-io writes a qcow2 image, Block
/// cannot open its file for writing, and the other way round; read-only inspection with force-share still works.</para>
/// <para>New bytes are taken first and conflicts checked afterwards, so two processes racing for the same image
/// cannot both succeed; on a conflict the previous locks are restored.</para>
/// </remarks>
internal sealed class ImageLock
{
    private const int UseBase = 100;
    private const int NoShareBase = 200;

    private readonly int _fd;
    private readonly string _filename;
    private BlockPermissions _used;
    private BlockPermissions _unshared;

    public ImageLock(int fd, string filename)
    {
        _fd = fd;
        _filename = filename;
    }

    /// <summary>True if the file system supports OFD locks (tested once per file).</summary>
    public static unsafe bool IsSupported(int fd)
    {
        var probe = new LibC.Flock { Type = LibC.F_WRLCK, Whence = LibC.SEEK_SET, Start = UseBase, Length = 1 };
        return LibC.FcntlLock(fd, LibC.F_OFD_GETLK, &probe) == 0;
    }

    /// <summary>Locks for <paramref name="used"/> and everything not in <paramref name="shared"/>, or throws and keeps the old locks.</summary>
    public void Apply(BlockPermissions used, BlockPermissions shared)
    {
        var unshared = BlockPermissions.All & ~shared;
        var (oldUsed, oldUnshared) = (_used, _unshared);
        try
        {
            SetBytes(used | oldUsed, unshared | oldUnshared);
            Check(used, unshared);
        }
        catch
        {
            SetBytes(oldUsed, oldUnshared);
            throw;
        }
        SetBytes(used, unshared);
    }

    /// <summary>Drops every lock byte, before the file is closed.</summary>
    /// <remarks>
    /// Closing the descriptor is not enough: OFD locks belong to the open file description, and a child process forked
    /// at that moment (by the embedding program, or a test starting qemu-img) holds a copy of the descriptor until it
    /// executes, so the locks would outlive the close and a reopen of the same image would find them. Unlocking acts
    /// on the description itself, copies included.
    /// </remarks>
    public void Release()
    {
        try
        {
            SetBytes(BlockPermissions.None, BlockPermissions.None);
        }
        catch (BlockException)
        {
            // The close that follows drops whatever is left.
        }
    }

    private void SetBytes(BlockPermissions used, BlockPermissions unshared)
    {
        foreach (var bit in BlockPermissionNames.Bits)
        {
            int p = BitIndex(bit);
            SetByte(UseBase + p, (used & bit) != 0, (_used & bit) != 0);
            SetByte(NoShareBase + p, (unshared & bit) != 0, (_unshared & bit) != 0);
        }
        _used = used;
        _unshared = unshared;
    }

    private unsafe void SetByte(int offset, bool want, bool have)
    {
        if (want == have)
            return;
        var fl = new LibC.Flock { Type = want ? LibC.F_RDLCK : LibC.F_UNLCK, Whence = LibC.SEEK_SET, Start = offset, Length = 1 };
        if (LibC.FcntlLock(_fd, LibC.F_OFD_SETLK, &fl) != 0)
        {
            int errno = LibC.LastErrno;
            throw new BlockException((Errno)errno, $"Failed to lock byte {offset}: {ErrnoText.Describe((Errno)errno)}");
        }
    }

    private void Check(BlockPermissions used, BlockPermissions unshared)
    {
        foreach (var bit in BlockPermissionNames.Bits)
        {
            int p = BitIndex(bit);
            if ((used & bit) != 0 && HeldByOthers(NoShareBase + p))
                throw Conflict($"Failed to get \"{BlockPermissionNames.Name(bit)}\" lock");
            if ((unshared & bit) != 0 && HeldByOthers(UseBase + p))
                throw Conflict($"Failed to get shared \"{BlockPermissionNames.Name(bit)}\" lock");
        }
    }

    private unsafe bool HeldByOthers(int offset)
    {
        var fl = new LibC.Flock { Type = LibC.F_WRLCK, Whence = LibC.SEEK_SET, Start = offset, Length = 1 };
        if (LibC.FcntlLock(_fd, LibC.F_OFD_GETLK, &fl) != 0)
        {
            int errno = LibC.LastErrno;
            throw new BlockException((Errno)errno, $"Failed to test lock byte {offset}: {ErrnoText.Describe((Errno)errno)}");
        }
        return fl.Type != LibC.F_UNLCK;
    }

    private BlockException Conflict(string message) =>
        new LockConflictException($"{message}\nIs another process using the image [{_filename}]?");

    private static int BitIndex(BlockPermissions bit) => System.Numerics.BitOperations.TrailingZeroCount((int)bit);
}

/// <summary>Another process holds a lock that conflicts with the permissions asked for.</summary>
public sealed class LockConflictException : BlockException
{
    /// <summary>Creates the exception.</summary>
    public LockConflictException(string message)
        : base(Errno.EAGAIN, message)
    {
    }
}
