using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Block.Nbd.Client;

/// <summary>Connects to a <see cref="NbdServerAddress"/>, failing with QEMU's messages.</summary>
internal static class NbdSocket
{
    public static async Task<Socket> ConnectAsync(NbdServerAddress server, CancellationToken cancellationToken)
    {
        if (server.IsUnix)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(server.Path!), cancellationToken).ConfigureAwait(false);
                return socket;
            }
            catch (Exception e) when (e is SocketException or ArgumentException)
            {
                socket.Dispose();
                throw new BlockException(Errno.EIO, $"Failed to connect to '{server.Path}': {Describe(e)}");
            }
        }

        string host = server.Host!;
        string portText = server.Port ?? "10809";
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port > 65535)
            throw new BlockException(Errno.EINVAL, $"address resolution failed for {host}:{portText}: Servname not supported for ai_socktype");
        IPAddress[] addresses;
        if (IPAddress.TryParse(host, out var literal))
        {
            addresses = [literal];
        }
        else
        {
            try
            {
                addresses = await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException)
            {
                addresses = [];
            }
            if (addresses.Length == 0)
                throw new BlockException(Errno.EINVAL, $"address resolution failed for {host}:{portText}: Name or service not known");
        }
        Exception? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, port), cancellationToken).ConfigureAwait(false);
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                last = e;
            }
        }
        throw new BlockException(Errno.EIO, $"Failed to connect to '{host}:{portText}': {Describe(last!)}");
    }

    /// <summary>The C library's text for the error behind <paramref name="e"/>, as QEMU prints <c>strerror</c>.</summary>
    private static string Describe(Exception e) => e switch
    {
        SocketException { SocketErrorCode: SocketError.ConnectionRefused } => "Connection refused",
        SocketException { SocketErrorCode: SocketError.AddressNotAvailable } => "No such file or directory",
        SocketException { SocketErrorCode: SocketError.AccessDenied } => "Permission denied",
        SocketException { SocketErrorCode: SocketError.TimedOut } => "Connection timed out",
        SocketException { SocketErrorCode: SocketError.NetworkUnreachable } => "Network is unreachable",
        SocketException { SocketErrorCode: SocketError.HostUnreachable } => "No route to host",
        SocketException s => Marshal.GetPInvokeErrorMessage(s.NativeErrorCode),
        _ => e.Message,
    };
}
