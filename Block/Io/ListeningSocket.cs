using System.Net;
using System.Net.Sockets;

namespace Block.Io;

/// <summary>
/// Listening sockets for Block's servers (QMP monitors, NBD exports), bound as QEMU binds its socket addresses, with
/// QEMU's messages when that fails.
/// </summary>
public static class ListeningSocket
{
    /// <summary>A unix socket bound at <paramref name="path"/> and listening; a stale socket file there is replaced.</summary>
    /// <exception cref="BlockException">The socket could not be bound.</exception>
    public static Socket BindUnix(string path, int backlog)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (File.Exists(path))
            File.Delete(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            socket.Listen(backlog);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new BlockException(Errno.EIO, $"Failed to bind socket to {path}: {e.Message}");
        }
    }

    /// <summary>A TCP socket bound at <paramref name="host"/>:<paramref name="port"/> and listening.</summary>
    /// <exception cref="BlockException">The address did not resolve or could not be bound.</exception>
    public static Socket BindTcp(string host, int port, int backlog)
    {
        IPAddress address;
        try
        {
            address = IPAddress.TryParse(host, out var ip) ? ip : Dns.GetHostAddresses(host).First();
        }
        catch (Exception e) when (e is SocketException or InvalidOperationException)
        {
            throw new BlockException(Errno.ENOENT, $"address resolution failed for {host}:{port}: {e.Message}");
        }
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen(backlog);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new BlockException(Errno.EIO, $"Failed to bind socket: {e.Message}");
        }
    }
}
