using System.Diagnostics.CodeAnalysis;
using Renci.SshNet.Common;

namespace Block.Ssh.Driver;

/// <summary>SSH.NET's exceptions as the <see cref="BlockException"/>s a request fails with, built out of line.</summary>
internal static class SshErrors
{
    /// <summary>A failed open, in QEMU's words: <c>failed to open remote file '/path': SFTP server: No such file</c>.</summary>
    public static BlockException Open(string path, Exception e)
    {
        var errno = e switch
        {
            SftpPathNotFoundException => Errno.ENOENT,
            SftpPermissionDeniedException => Errno.EACCES,
            _ => Errno.EIO,
        };
        string reason = e switch
        {
            SftpPathNotFoundException => "SFTP server: No such file",
            SftpPermissionDeniedException => "SFTP server: Permission denied",
            SftpException => "SFTP server: " + e.Message,
            _ => e.Message,
        };
        return new BlockException(errno, $"failed to open remote file '{path}': {reason}", e);
    }

    /// <summary>A failed request: EIO, naming the operation and SSH.NET's reason (a lost connection, a server error).</summary>
    public static BlockException Io(string operation, Exception e) =>
        new(Errno.EIO, $"ssh: {operation} failed: {(e is ObjectDisposedException ? "the connection is closed" : e.Message)}", e);

    [DoesNotReturn]
    public static void ThrowIo(string operation, Exception e) => throw Io(operation, e);
}
