using System.Diagnostics;
using Block.TestSupport;

namespace Block.Curl.Tests;

/// <summary>
/// nginx (a web server we did not write) serving a directory over http and https on loopback ports picked free, its
/// configuration, log and state in a temporary directory, stopped when disposed. Its access log records each
/// request's Range header.
/// </summary>
internal sealed class Nginx : IDisposable
{
    private static readonly Lazy<string> s_path = new(() =>
        new[] { "/usr/sbin/nginx", ProcessRunner.Which("nginx") }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("nginx is not installed: the http tests need Debian's nginx-light (run ./test.sh, which installs it)"));

    private readonly Process _process;
    private readonly string _log;

    private Nginx(Process process, string root, string log, int httpPort, int httpsPort)
    {
        _process = process;
        Root = root;
        _log = log;
        HttpPort = httpPort;
        HttpsPort = httpsPort;
    }

    /// <summary>The directory served.</summary>
    public string Root { get; }

    public int HttpPort { get; }

    public int HttpsPort { get; }

    public string HttpUrl(string name) => $"http://127.0.0.1:{HttpPort}/{name}";

    public string HttpsUrl(string name) => $"https://localhost:{HttpsPort}/{name}";

    /// <summary>
    /// Starts nginx over <paramref name="directory"/>/www, with TLS from a certificate for localhost made there, and
    /// <c>/private/</c> behind basic authentication (<paramref name="user"/>, <paramref name="password"/>).
    /// </summary>
    public static Nginx Start(string directory, string user = "alice", string password = "secret")
    {
        string root = Path.Combine(directory, "www");
        Directory.CreateDirectory(Path.Combine(root, "private"));
        var tls = TlsCertificates.Create(Path.Combine(directory, "tls"));
        string htpasswd = Path.Combine(directory, "htpasswd");
        string hash = ProcessRunner.Run("openssl", ["passwd", "-apr1", password]).EnsureSuccess("openssl passwd").Stdout.Trim();
        File.WriteAllText(htpasswd, $"{user}:{hash}\n");
        string log = Path.Combine(directory, "access.log");
        int httpPort = FreePort.Next(), httpsPort = FreePort.Next();
        string config = Path.Combine(directory, "nginx.conf");
        string temp = Path.Combine(directory, "temp");
        Directory.CreateDirectory(temp);
        File.WriteAllText(config, $$"""
            daemon off;
            master_process off;
            worker_processes 1;
            pid {{directory}}/nginx.pid;
            error_log {{directory}}/error.log;
            events { worker_connections 256; }
            http {
              log_format ranges '$request_method $uri $status $http_range';
              access_log {{log}} ranges;
              client_body_temp_path {{temp}}/body; proxy_temp_path {{temp}}/proxy; fastcgi_temp_path {{temp}}/fastcgi;
              uwsgi_temp_path {{temp}}/uwsgi; scgi_temp_path {{temp}}/scgi;
              default_type application/octet-stream;
              server {
                listen 127.0.0.1:{{httpPort}};
                listen 127.0.0.1:{{httpsPort}} ssl;
                ssl_certificate {{tls.ServerDirectory}}/server-cert.pem;
                ssl_certificate_key {{tls.ServerDirectory}}/server-key.pem;
                root {{root}};
                location /private/ { auth_basic "images"; auth_basic_user_file {{htpasswd}}; }
              }
            }
            """);
        var process = ProcessRunner.Start(s_path.Value, ["-c", config, "-p", directory, "-e", Path.Combine(directory, "error.log")]);
        FreePort.WaitListening(httpPort, process, "nginx");
        FreePort.WaitListening(httpsPort, process, "nginx");
        return new Nginx(process, root, log, httpPort, httpsPort);
    }

    /// <summary>Forgets the requests logged so far.</summary>
    public void ClearLog()
    {
        Flush();
        File.WriteAllText(_log, string.Empty);
    }

    /// <summary>
    /// The requests logged since the last <see cref="ClearLog"/> (<c>GET /disk.raw 206 bytes=0-262655</c>).
    /// </summary>
    /// <remarks>
    /// nginx logs a request in the event handler that sends its last byte; one more request on a new connection is
    /// answered by the same single worker only after that handler returned, so after its answer every earlier line is
    /// in the file.
    /// </remarks>
    public IReadOnlyList<string> Requests()
    {
        Flush();
        return File.ReadAllLines(_log).Where(l => !l.Contains("/flush-marker", StringComparison.Ordinal)).ToList();
    }

    private void Flush()
    {
        using var client = new HttpClient();
        client.GetAsync($"http://127.0.0.1:{HttpPort}/flush-marker").GetAwaiter().GetResult().Dispose();
    }

    public void Dispose()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        _process.Dispose();
    }
}
