using System.Net;
using System.Net.Sockets;

namespace Block.Curl.Tests;

/// <summary>A loopback TCP port nobody listens on right now.</summary>
internal static class FreePort
{
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Waits (at most 60 s, bounding a hang) until something accepts connections on <paramref name="port"/>.</summary>
    public static void WaitListening(int port, System.Diagnostics.Process server, string name)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            if (server.HasExited)
                throw new InvalidOperationException($"{name} exited with {server.ExitCode}: {server.StandardError.ReadToEnd()}");
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                // Not listening yet.
            }
            if (clock.Elapsed > TimeSpan.FromSeconds(60))
                throw new TimeoutException($"{name} did not listen on port {port} within 60 s");
            Thread.Sleep(20);
        }
    }
}
