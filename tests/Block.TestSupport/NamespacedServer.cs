using System.Diagnostics;
using System.Globalization;

namespace Block.TestSupport;

/// <summary>
/// A throwaway server started by a shell script as the first process of private network, mount and PID namespaces
/// (<c>unshare</c>), and killed with everything in them on dispose. Clients run inside the network namespace with
/// <see cref="Run"/> (<c>nsenter --net</c>); the library reaches it through <see cref="NetworkNamespace"/>.
/// </summary>
/// <remarks>
/// Servers that want fixed ports or fixed system paths (libnfs's portmapper on 111, glusterd's 24007 and
/// <c>/var/lib/glusterd</c>) get their own loopback and a private <c>/run</c> this way, and nothing outlives the test.
/// </remarks>
public abstract class NamespacedServer : IDisposable
{
    /// <summary>How long a server and each of its services may take to start.</summary>
    protected static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(60);

    private readonly string _name;
    private Process? _unshare;

    /// <summary>Makes the server's temporary directory; <see cref="Start"/> starts it.</summary>
    protected NamespacedServer(string name)
    {
        _name = name;
        Directory = new TempDirectory();
    }

    /// <summary>The test's temporary directory: the script, the server's files and logs.</summary>
    public TempDirectory Directory { get; }

    /// <summary>The namespaces' first process (the script), as this machine sees it.</summary>
    public int InitPid { get; private set; }

    /// <summary>The server's network namespace.</summary>
    public string NetworkNamespace => $"/proc/{InitPid}/ns/net";

    /// <summary>Runs <paramref name="script"/> as the namespaces' first process and waits until it runs.</summary>
    protected void Start(string script)
    {
        System.IO.File.WriteAllText(Directory.File("server.sh"), script);
        _unshare = ProcessRunner.Start("unshare", ["--net", "--mount", "--pid", "--fork", "--kill-child", "--", "sh", Directory.File("server.sh")]);
        InitPid = WaitFor(() => Children(_unshare.Id).FirstOrDefault(), "the namespaces' first process");
    }

    /// <summary>Runs <paramref name="program"/> in the server's network namespace.</summary>
    public virtual ProcessResult Run(string program, params string[] args) =>
        ProcessRunner.Run("nsenter", ["--net=" + NetworkNamespace, "--", program, .. args], TimeSpan.FromMinutes(5));

    /// <summary>Runs qemu-img in the server's network namespace.</summary>
    public ProcessResult QemuImg(params string[] args) => Run(TestSupport.QemuImg.Path, args);

    /// <summary>Runs the <c>blk</c> executable built beside the tests, in the server's network namespace.</summary>
    public ProcessResult Blk(params string[] args) => Run(BlkRunner.ExecutablePath, args);

    /// <summary>Runs qemu-io's <paramref name="commands"/> on <paramref name="image"/> in the server's network namespace.</summary>
    public ProcessResult QemuIo(string image, string format, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (var c in commands)
            args.AddRange(["-c", c]);
        args.Add(image);
        return Run(TestSupport.QemuIo.Path, [.. args]);
    }

    /// <summary>What the server logged, for a failure's message.</summary>
    protected abstract string Log();

    /// <summary>Polls <paramref name="probe"/> until it gives non-zero, failing if the server exits or takes too long.</summary>
    protected int WaitFor(Func<int> probe, string what)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < StartLimit)
        {
            if (_unshare!.HasExited)
                throw new InvalidOperationException($"the {_name} exited: {_unshare.StandardError.ReadToEnd()} {Log()}");
            int value = probe();
            if (value != 0)
                return value;
            Thread.Sleep(100);
        }
        throw new TimeoutException($"{what} did not start within {StartLimit.TotalSeconds} s: {Log()}");
    }

    /// <summary>The children of process <paramref name="pid"/>.</summary>
    protected static IEnumerable<int> Children(int pid)
    {
        string text;
        try
        {
            text = System.IO.File.ReadAllText($"/proc/{pid}/task/{pid}/children");
        }
        catch (IOException)
        {
            return [];
        }
        return text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture));
    }

    /// <summary>The command name of process <paramref name="pid"/>, or null if it is gone.</summary>
    protected static string? ReadComm(int pid)
    {
        try
        {
            return System.IO.File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Kills the namespaces' first process, and with it every process inside; removes the directory.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (!disposing)
            return;
        if (_unshare is { } unshare)
        {
            // Killing unshare kills its child (--kill-child), the PID namespace's init, and with it every process inside.
            try
            {
                unshare.Kill(entireProcessTree: true);
                unshare.WaitForExit(StartLimit);
            }
            catch (InvalidOperationException)
            {
            }
            unshare.Dispose();
        }
        Directory.Dispose();
    }
}
