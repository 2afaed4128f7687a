using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Block.TestSupport;

namespace Block.Iscsi.Tests;

/// <summary>
/// The <c>tgt</c> user-space iSCSI target (a server we did not write), run in the foreground by the test with its own
/// management port and a portal on a free loopback port: one target with one LUN backed by a file in a temporary
/// directory, thin-provisioned so that UNMAP and GET LBA STATUS work. Killed on dispose (only this tgtd).
/// </summary>
/// <remarks>
/// No network namespace is needed: tgtd listens only on the portal given, and its management channel is an abstract
/// unix socket named after the <c>-C</c> number, so two tests (or a system tgtd) never meet.
/// </remarks>
public sealed class TgtTarget : IDisposable
{
    public const string Iqn = "iqn.2026-12.org.example.block:disk";

    private static readonly Lazy<(string Tgtd, string Tgtadm)> s_programs = new(() =>
    {
        string? tgtd = new[] { "/usr/sbin/tgtd", ProcessRunner.Which("tgtd") }.FirstOrDefault(File.Exists);
        string? tgtadm = new[] { "/usr/sbin/tgtadm", ProcessRunner.Which("tgtadm") }.FirstOrDefault(File.Exists);
        if (tgtd is null || tgtadm is null)
            throw new InvalidOperationException("tgtd is not installed: the iscsi tests need Debian's tgt (run ./test.sh, which installs it)");
        return (tgtd, tgtadm);
    });

    private Process _tgtd;
    private int _controlPort;
    private readonly System.Text.StringBuilder _log = new();

    /// <summary>Starts tgtd with a LUN of <paramref name="size"/> bytes (zeroes, sparse), optionally behind CHAP.</summary>
    public TgtTarget(long size = 64 << 20, string? chapUser = null, string? chapPassword = null)
    {
        Directory = new TempDirectory();
        LunPath = Directory.File("lun.img");
        using (var file = File.Create(LunPath))
            file.SetLength(size);
        // tgtd's management number is at most 32767 and not a TCP port: picked at random, and again if taken.
        for (int attempt = 1; ; attempt++)
        {
            Port = FreePort();
            _controlPort = Random.Shared.Next(1024, 32768);
            _tgtd = StartTgtd();
            try
            {
                WaitReady();
                break;
            }
            catch (InvalidOperationException) when (attempt < 5 && _tgtd.HasExited)
            {
                _tgtd.Dispose();
            }
        }
        Admin("--op", "new", "--mode", "target", "--tid", "1", "-T", Iqn);
        Admin("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", LunPath);
        // Only after the LUN exists: tgt ignores thin_provisioning given with "new".
        Admin("--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "--params", "thin_provisioning=1");
        if (chapUser != null)
        {
            Admin("--op", "new", "--mode", "account", "--user", chapUser, "--password", chapPassword ?? "");
            Admin("--op", "bind", "--mode", "account", "--tid", "1", "--user", chapUser);
        }
        Admin("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL");
    }

    public TempDirectory Directory { get; }

    /// <summary>What tgtd printed so far.</summary>
    public string Log
    {
        get
        {
            lock (_log)
                return _log.ToString();
        }
    }

    /// <summary>The file behind LUN 1.</summary>
    public string LunPath { get; }

    public int Port { get; private set; }

    public string Portal => $"127.0.0.1:{Port}";

    /// <summary>QEMU's file name of LUN 1.</summary>
    public string Url => $"iscsi://{Portal}/{Iqn}/1";

    /// <summary>The <c>--image-opts</c> options of LUN 1 under <paramref name="format"/>, with <paramref name="extra"/> iscsi options.</summary>
    public string ImageOpts(string format = "raw", string extra = "") =>
        $"driver={format},file.driver=iscsi,file.transport=tcp,file.portal={Portal},file.target={Iqn},file.lun=1{extra}";

    /// <summary>Kills tgtd at once (SIGKILL): its connections drop as a crashed target's do.</summary>
    public void Kill()
    {
        try
        {
            _tgtd.Kill();
            _tgtd.WaitForExit();
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    /// <summary>Makes the LUN read-only in tgt: MODE SENSE then sets the WP bit and writes fail with DATA PROTECT.</summary>
    public void SetReadOnly() =>
        Admin("--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "--params", "readonly=1");

    private Process StartTgtd()
    {
        var (tgtd, _) = s_programs.Value;
        var process = ProcessRunner.Start(tgtd, ["-f", "-C", $"{_controlPort}", "--iscsi", $"portal=127.0.0.1:{Port}"]);
        // tgtd logs to stderr for as long as it runs: drained here so that a full pipe never stalls it.
        process.ErrorDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        process.OutputDataReceived += (_, e) => { lock (_log) _log.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        return process;
    }

    private void Admin(params string[] args)
    {
        var (_, tgtadm) = s_programs.Value;
        var result = ProcessRunner.Run(tgtadm, ["-C", $"{_controlPort}", "--lld", "iscsi", .. args], TimeSpan.FromSeconds(60));
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"tgtadm {string.Join(' ', args)} failed: {result.Stderr}");
    }

    /// <summary>Waits (at most 60 s) for the portal to accept connections and the management channel to answer.</summary>
    private void WaitReady()
    {
        var (_, tgtadm) = s_programs.Value;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (_tgtd.HasExited)
                throw new InvalidOperationException($"tgtd exited with {_tgtd.ExitCode}: {Log}");
            if (Listening() && ProcessRunner.Run(tgtadm, ["-C", $"{_controlPort}", "--lld", "iscsi", "--op", "show", "--mode", "target"], TimeSpan.FromSeconds(10)).ExitCode == 0)
                return;
            if (clock.Elapsed > TimeSpan.FromSeconds(60))
                throw new TimeoutException($"tgtd did not listen on port {Port} within 60 s");
            Thread.Sleep(50);
        }
    }

    private bool Listening()
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, Port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        Kill();
        _tgtd.Dispose();
        Directory.Dispose();
    }
}
