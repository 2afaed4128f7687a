using System.Runtime.InteropServices;

namespace Block.Rbd.Interop;

/// <summary>Turns librados' and librbd's negative errno returns into <see cref="BlockException"/>s with QEMU's wording.</summary>
internal static class RbdErrors
{
    /// <summary>An exception for <paramref name="rc"/> (a negative errno): "<paramref name="what"/>: strerror".</summary>
    public static BlockException Exception(string what, long rc)
    {
        int errno = (int)-rc;
        var code = Enum.IsDefined((Errno)errno) ? (Errno)errno : Errno.EIO;
        return new BlockException(code, $"{what}: {Marshal.GetPInvokeErrorMessage(errno)}");
    }

    /// <summary>Throws for a negative <paramref name="rc"/>.</summary>
    public static void Check(string what, long rc)
    {
        if (rc < 0)
            Throw(what, rc);
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void Throw(string what, long rc) => throw Exception(what, rc);
}
