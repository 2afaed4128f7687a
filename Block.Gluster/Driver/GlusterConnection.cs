using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using Block.Gluster.Interop;
using Block.Gluster.Options;

namespace Block.Gluster.Driver;

/// <summary>
/// One gfapi instance (<c>glfs_t</c>) connected to a volume: requests from any thread start with gfapi's async calls
/// and complete from gfapi's callbacks; the blocking calls (open, stat, truncate, seek) run on the thread pool with
/// the same bound; closing finalises gfapi in the background.
/// </summary>
/// <remarks>
/// <para>The instance is made and initialised on a thread of its own, which first enters
/// <see cref="GlusterSettings.NetworkNamespace"/> when there is one: gfapi's event, timer and sync threads are
/// started from it and inherit its namespace, so every socket gfapi opens (glusterd's, the bricks', reconnections)
/// lives there and the rest of the process stays where it is.</para>
/// <para>gfapi waits for a brick for as long as its frame timeout (30 minutes by default). A limit of our own bounds
/// that: every <see cref="TickMilliseconds"/> a timer looks for a request older than
/// <see cref="GlusterSettings.RequestTimeout"/>; when it finds one, every request in flight and every later one fails
/// with EIO, and the node must be reopened. A brick that dies outright is noticed by gfapi itself (its socket
/// closes), and its requests fail at once with ENOTCONN, reported as EIO.</para>
/// <para><c>glfs_fini</c> takes about 10 s in Debian's libgfapi 10.3 (measured here, for qemu-img as for us: it waits
/// out a timer of its event threads). Closing a node closes its file at once, which flushes gfapi's write-behind,
/// and finalises the instance on a background task, so neither the caller nor a graph waits for it.</para>
/// </remarks>
internal sealed class GlusterConnection
{
    /// <summary>How often the deadline timer looks at the requests in flight.</summary>
    private const int TickMilliseconds = 250;

    private const int Pending = 0, Taken = 1, GaveUp = 2;

    private static int s_finalising;

    private readonly GlusterSettings _settings;
    private readonly ConcurrentStack<GlusterRequest> _pool = new();
    private readonly HashSet<GlusterRequest> _inFlight = [];
    private readonly object _gate = new();
    private readonly Timer _deadlines;
    private readonly nint _fs;
    private Exception? _deadError;
    private bool _closed;

    private GlusterConnection(GlusterSettings settings, nint fs)
    {
        _settings = settings;
        _fs = fs;
        _deadlines = new Timer(static state => ((GlusterConnection)state!).CheckDeadlines(), this, TickMilliseconds, TickMilliseconds);
    }

    /// <summary>gfapi instances whose <c>glfs_fini</c> is still running in the background.</summary>
    public static int FinalisingCount => Volatile.Read(ref s_finalising);

    /// <summary>The <c>glfs_t</c>.</summary>
    public nint Handle => _fs;

    /// <summary>Makes a gfapi instance for <paramref name="settings"/>' volume and connects it, within the request limit.</summary>
    public static async Task<GlusterConnection> ConnectAsync(GlusterSettings settings)
    {
        GlusterLibrary.EnsureLoaded();
        var attempt = new ConnectAttempt(settings);
        var thread = new Thread(attempt.Run) { IsBackground = true, Name = $"gluster connect {settings.Volume}" };
        thread.Start();
        try
        {
            return new GlusterConnection(settings, await attempt.Result.Task.WaitAsync(settings.RequestTimeout).ConfigureAwait(false));
        }
        catch (TimeoutException)
        {
            if (Interlocked.CompareExchange(ref attempt.State, GaveUp, Pending) != Pending)
                return new GlusterConnection(settings, await attempt.Result.Task.ConfigureAwait(false));
            throw ConnectFailed(settings, Errno.ETIMEDOUT);
        }
    }

    /// <summary>QEMU 7.2's message for a volume that cannot be reached, with its hint naming every server.</summary>
    private static BlockException ConnectFailed(GlusterSettings settings, Errno errno)
    {
        var hint = new StringBuilder("hint: ");
        foreach (var server in settings.Servers)
        {
            if (server.Type == GlusterTransport.Unix)
                hint.Append("failed on socket ").Append(server.Path).Append(' ');
            else
                hint.Append("failed on host ").Append(server.Host).Append(" and port ").Append(server.Port ?? GlusterServer.DefaultPort.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(' ');
        }
        hint.Append("Please refer to gluster logs for more info");
        return new BlockException(errno, $"Gluster connection for volume {settings.Volume}, path {settings.Path} failed to connect\n{hint}");
    }

    /// <summary>The thread that makes and initialises one gfapi instance, and finalises it if nobody waits any more.</summary>
    private sealed class ConnectAttempt(GlusterSettings settings)
    {
        public readonly TaskCompletionSource<nint> Result = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int State;

        public void Run()
        {
            nint fs = 0;
            try
            {
                if (settings.NetworkNamespace is { } ns)
                    EnterNetworkNamespace(ns);
                fs = LibGfapi.New(settings.Volume);
                if (fs == 0)
                    throw new BlockException(Errno.ENOMEM, "Error: glfs_new failed");
                foreach (var server in settings.Servers)
                {
                    int rc = server.Type == GlusterTransport.Unix
                        ? LibGfapi.SetVolfileServer(fs, "unix", server.Path!, 0)
                        : LibGfapi.SetVolfileServer(fs, "tcp", server.Host!, ParsePort(server.Port));
                    if (rc < 0)
                        throw ConnectFailed(settings, ErrnoOf(Marshal.GetLastPInvokeError()));
                }
                if (LibGfapi.SetLogging(fs, settings.Logfile, settings.Debug) < 0)
                    throw new BlockException(ErrnoOf(Marshal.GetLastPInvokeError()), $"Error setting logfile {settings.Logfile}");
                // As QEMU: after a failed fsync, write-behind keeps the failed writes and retries them on the next
                // one, rather than dropping them.
                LibGfapi.SetXlatorOption(fs, "*-write-behind", "resync-failed-syncs-after-fsync", "on");
                if (LibGfapi.Init(fs) != 0)
                    throw ConnectFailed(settings, ErrnoOf(Marshal.GetLastPInvokeError()));
            }
            catch (BlockException e)
            {
                Result.TrySetException(e);
                if (fs != 0)
                    Finalise(fs);
                return;
            }
            if (Interlocked.CompareExchange(ref State, Taken, Pending) == Pending)
                Result.TrySetResult(fs);
            else
                Finalise(fs);
        }
    }

    private static int ParsePort(string? port) =>
        port is null ? GlusterServer.DefaultPort : int.Parse(port, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Moves this thread, and every thread gfapi starts from it, into the network namespace at <paramref name="path"/>.</summary>
    private static void EnterNetworkNamespace(string path)
    {
        int fd = LibC.Open(path, LibC.OReadOnly | LibC.OCloexec);
        if (fd < 0)
            throw new BlockException(Errno.ENOENT, $"cannot open network namespace {path}: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            if (LibC.SetNs(fd, LibC.CloneNewNet) != 0)
                throw new BlockException(Errno.EPERM, $"cannot enter network namespace {path}: errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    /// <summary>Runs a blocking gfapi call on the thread pool, failing the connection if it outlasts the request limit.</summary>
    public async Task<T> RunAsync<T>(Func<T> call, string what)
    {
        ThrowIfDead();
        try
        {
            return await Task.Run(call).WaitAsync(_settings.RequestTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            var error = Timeout(what);
            Die(error);
            throw error;
        }
    }

    /// <summary>Starts a flush, discard or write-zeroes of <paramref name="count"/> bytes at <paramref name="offset"/>.</summary>
    public ValueTask<long> StartAsync(GlusterOperation operation, nint fd, long offset, long count) =>
        Start(Rent(operation, offset, count), fd);

    /// <summary>Starts a read into, or a write of, <paramref name="buffers"/> at <paramref name="offset"/>.</summary>
    public ValueTask<long> StartAsync(GlusterOperation operation, nint fd, long offset, Block.Io.IoVector buffers)
    {
        var request = Rent(operation, offset, buffers.Length);
        request.Pin(buffers);
        return Start(request, fd);
    }

    private GlusterRequest Rent(GlusterOperation operation, long offset, long count)
    {
        var request = _pool.TryPop(out var pooled) ? pooled : new GlusterRequest();
        request.Operation = operation;
        request.Offset = offset;
        request.Count = count;
        return request;
    }

    private unsafe ValueTask<long> Start(GlusterRequest request, nint fd)
    {
        var operation = request.Operation;
        long offset = request.Offset, count = request.Count;
        var pending = request.Begin(this);
        Exception? refused;
        lock (_gate)
        {
            refused = _deadError;
            if (refused is null)
                _inFlight.Add(request);
        }
        if (refused != null)
        {
            request.Refuse(refused);
            return pending;
        }
        var done = (delegate* unmanaged<nint, nint, nint, nint, nint, void>)&OnDone;
        nint cookie = request.Cookie;
        int rc = operation switch
        {
            GlusterOperation.Read => LibGfapi.PreadvAsync(fd, request.IoVecs, request.IoVecCount, offset, 0, done, cookie),
            GlusterOperation.Write => LibGfapi.PwritevAsync(fd, request.IoVecs, request.IoVecCount, offset, 0, done, cookie),
            GlusterOperation.Fsync => LibGfapi.FsyncAsync(fd, done, cookie),
            GlusterOperation.Discard => LibGfapi.DiscardAsync(fd, offset, (nuint)count, done, cookie),
            GlusterOperation.Zerofill => LibGfapi.ZerofillAsync(fd, offset, count, done, cookie),
            _ => -1,
        };
        if (rc < 0)
            request.Finish(-1, Marshal.GetLastPInvokeError());
        return pending;
    }

    /// <summary>gfapi's <c>glfs_io_cbk</c> (GlusterFS ≥ 6: with pre- and post-operation stats, unused here).</summary>
    [UnmanagedCallersOnly]
    private static void OnDone(nint fd, nint result, nint prestat, nint poststat, nint cookie)
    {
        int errno = result < 0 ? Marshal.GetLastSystemError() : 0;
        GlusterRequest.FromCookie(cookie).Finish(result, errno);
    }

    internal void Untrack(GlusterRequest request)
    {
        lock (_gate)
            _inFlight.Remove(request);
    }

    internal void Return(GlusterRequest request)
    {
        if (Volatile.Read(ref _closed))
            request.Free();
        else
            _pool.Push(request);
    }

    /// <summary>A failed request's error: the errno gfapi gave, a lost connection (ENOTCONN) as EIO.</summary>
    internal BlockException Error(GlusterOperation operation, int errno)
    {
        string text = Marshal.GetPInvokeErrorMessage(errno);
        return new BlockException(ErrnoOf(errno), $"gluster: {Describe(operation)} on volume {_settings.Volume} failed: {text}");
    }

    /// <summary>The errno as the block layer's; one it has no name for (ENOTCONN, ESTALE …) is EIO.</summary>
    internal static Errno ErrnoOf(int errno) => errno > 0 && Enum.IsDefined((Errno)errno) ? (Errno)errno : Errno.EIO;

    private static string Describe(GlusterOperation operation) => operation switch
    {
        GlusterOperation.Read => "a read",
        GlusterOperation.Write => "a write",
        GlusterOperation.Fsync => "a flush",
        GlusterOperation.Discard => "a discard",
        GlusterOperation.Zerofill => "a write-zeroes",
        _ => "a request",
    };

    private BlockException Timeout(string what) => new(Errno.EIO,
        $"gluster: volume {_settings.Volume} did not answer {what} for {_settings.RequestTimeout.TotalSeconds:0.#} s");

    private void ThrowIfDead()
    {
        var error = Volatile.Read(ref _deadError);
        if (error != null)
            throw error;
    }

    private void CheckDeadlines()
    {
        long limit = (long)_settings.RequestTimeout.TotalMilliseconds;
        long now = Environment.TickCount64;
        GlusterRequest? overdue = null;
        lock (_gate)
        {
            foreach (var request in _inFlight)
            {
                if (now - request.StartTicks >= limit)
                {
                    overdue = request;
                    break;
                }
            }
        }
        if (overdue != null)
            Die(Timeout(Describe(overdue.Operation)));
    }

    /// <summary>Gives up on the volume: every request in flight fails now, and every later one at once.</summary>
    private void Die(BlockException error)
    {
        GlusterRequest[] abandoned;
        lock (_gate)
        {
            _deadError ??= error;
            abandoned = [.. _inFlight];
            _inFlight.Clear();
        }
        foreach (var request in abandoned)
            request.Abandon(_deadError);
    }

    /// <summary>
    /// Stops the deadline timer and finalises the instance on a background task (<c>glfs_fini</c> takes about 10 s
    /// with libgfapi 10.3); the caller does not wait for it.
    /// </summary>
    public void Close()
    {
        if (Volatile.Read(ref _closed))
            return;
        Volatile.Write(ref _closed, true);
        _deadlines.Dispose();
        while (_pool.TryPop(out var request))
            request.Free();
        Finalise(_fs);
    }

    private static void Finalise(nint fs)
    {
        Interlocked.Increment(ref s_finalising);
        _ = Task.Factory.StartNew(static state =>
        {
            try
            {
                LibGfapi.Fini((nint)state!);
            }
            finally
            {
                Interlocked.Decrement(ref s_finalising);
            }
        }, fs, CancellationToken.None, TaskCreationOptions.LongRunning | TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);
    }
}
