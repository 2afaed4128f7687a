using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Block.Nbd.Server;

/// <summary>
/// Tells whether a client has closed its end of a socket, even when bytes it sent before (its disconnect request) are
/// still unread: Linux's <c>POLLRDHUP</c>, which <see cref="Socket.Poll(int, SelectMode)"/> does not expose.
/// </summary>
internal static partial class SocketHangUp
{
    private const short PollRdHup = 0x2000;
    private const short PollHup = 0x10;
    private const short PollErr = 0x8;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(ref PollFd fd, nuint count, int timeoutMs);

    /// <summary>True if the peer of <paramref name="socket"/> has shut its side down (or the socket failed).</summary>
    public static bool HasHungUp(Socket socket)
    {
        var fd = new PollFd { Fd = (int)socket.Handle, Events = PollRdHup };
        int n = Poll(ref fd, 1, 0);
        return n > 0 && (fd.Revents & (PollRdHup | PollHup | PollErr)) != 0;
    }
}
