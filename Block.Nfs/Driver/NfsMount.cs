using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Block.Io;
using Block.Nfs.Interop;

namespace Block.Nfs.Driver;

/// <summary>
/// One libnfs context, mounted on one export, with the one thread that drives it: requests from any thread are queued
/// here, started by the thread with libnfs's async calls, and completed from their callbacks inside
/// <c>nfs_service</c>.
/// </summary>
/// <remarks>
/// <para>A libnfs 4.0 context is not thread-safe, so every libnfs call is made on this thread. It sleeps in
/// <c>poll</c> on the context's socket and an eventfd that a submission writes to, so one thread serves any number of
/// requests in flight, and there is no thread per request.</para>
/// <para>libnfs waits for an answer forever (QEMU 7.2 hangs when the server dies mid-write), and reconnects to a
/// server that went away for as long as it takes. A limit of our own bounds that: when a request has waited
/// <see cref="NfsSettings.RequestTimeout"/>, or libnfs reports the connection unusable, the context is destroyed
/// (releasing every buffer it held), every request in flight and every later one fails with EIO, and the node must be
/// reopened.</para>
/// </remarks>
internal sealed class NfsMount : IDisposable
{
    /// <summary>How often the loop wakes while requests are in flight, to check their deadlines.</summary>
    private const int TickMilliseconds = 100;

    [ThreadStatic]
    private static NfsMount? t_current;

    private readonly NfsSettings _settings;
    private readonly ConcurrentQueue<NfsRequest> _submitted = new();
    private readonly ConcurrentStack<NfsRequest> _pool = new();
    private readonly Dictionary<int, NfsRequest> _inFlight = [];
    private readonly object _gate = new();
    private readonly Thread _thread;
    private readonly int _wakeFd;
    private nint _nfs;
    private int _nextId;
    private bool _dead;
    private Exception? _deadError;
    private volatile bool _stopping;
    private long _lastDeadlineCheck;

    private NfsMount(NfsSettings settings)
    {
        _settings = settings;
        _wakeFd = LibC.EventFd(0, LibC.EfdCloexec | LibC.EfdNonblock);
        if (_wakeFd < 0)
            throw new BlockException(Errno.ENOMEM, $"eventfd failed: errno {Marshal.GetLastPInvokeError()}");
        _thread = new Thread(Run) { IsBackground = true, Name = $"nfs {settings.Server}" };
        _thread.Start();
    }

    /// <summary>The largest read or write libnfs sends in one RPC (the smaller of the server's rtmax and wtmax).</summary>
    public int MaxTransfer { get; private set; }

    /// <summary>Connects to <paramref name="settings"/>' server and mounts <paramref name="export"/>.</summary>
    public static async Task<NfsMount> MountAsync(NfsSettings settings, string export)
    {
        NfsLibrary.EnsureLoaded();
        var mount = new NfsMount(settings);
        try
        {
            var request = new NfsRequest(pooled: false) { Operation = NfsOperation.Mount, Server = settings.Server, Path = export };
            await mount.Submit(request).ConfigureAwait(false);
            return mount;
        }
        catch
        {
            mount.Dispose();
            throw;
        }
    }

    /// <summary>Opens (or with <see cref="NfsOperation.Create"/>, creates with mode 0600) the file at <paramref name="path"/>.</summary>
    public async Task<nint> OpenAsync(string path, NfsOperation operation, int flags)
    {
        var request = new NfsRequest(pooled: false) { Operation = operation, Path = path, Flags = flags };
        await Submit(request).ConfigureAwait(false);
        return request.ResultHandle;
    }

    /// <summary>The file's attributes.</summary>
    public async Task<LibNfs.Stat64> StatAsync(nint file)
    {
        var request = new NfsRequest(pooled: false) { Operation = NfsOperation.Stat, File = file };
        await Submit(request).ConfigureAwait(false);
        return request.Stat;
    }

    /// <summary>Runs a call that takes only the file and a length (close, truncate, fsync, umount).</summary>
    public ValueTask<int> RunAsync(NfsOperation operation, nint file, long length = 0)
    {
        var request = Rent();
        request.Operation = operation;
        request.File = file;
        request.Offset = length;
        return Submit(request);
    }

    /// <summary>Reads <paramref name="target"/>.Length bytes at <paramref name="offset"/>; the result is the number libnfs returned.</summary>
    public ValueTask<int> ReadAsync(nint file, long offset, IoVector target)
    {
        var request = Rent();
        request.Operation = NfsOperation.Read;
        request.File = file;
        request.Offset = offset;
        request.Count = target.Length;
        request.Target = target;
        return Submit(request);
    }

    /// <summary>Writes <paramref name="source"/> at <paramref name="offset"/>; the result is the number of bytes written.</summary>
    public ValueTask<int> WriteAsync(nint file, long offset, IoVector source)
    {
        var request = Rent();
        request.Operation = NfsOperation.Write;
        request.File = file;
        request.Offset = offset;
        request.Count = source.Length;
        request.HoldForWrite(source);
        return Submit(request);
    }

    private NfsRequest Rent() => _pool.TryPop(out var request) ? request : new NfsRequest(pooled: true);

    internal void Return(NfsRequest request) => _pool.Push(request);

    private ValueTask<int> Submit(NfsRequest request)
    {
        var pending = request.Begin(this);
        request.StartTicks = Environment.TickCount64;
        Exception? refused;
        lock (_gate)
        {
            refused = _dead ? _deadError : null;
            if (refused is null)
                _submitted.Enqueue(request);
        }
        if (refused != null)
            request.Fail(refused);
        else
            Wake();
        return pending;
    }

    private unsafe void Wake()
    {
        ulong one = 1;
        LibC.Write(_wakeFd, &one, sizeof(ulong));
    }

    private unsafe void Run()
    {
        t_current = this;
        try
        {
            Initialise();
        }
        catch (BlockException e)
        {
            Die(e);
            return;
        }
        var fds = stackalloc LibC.PollFd[2];
        while (true)
        {
            while (_submitted.TryDequeue(out var request))
                Start(request);
            if (_stopping && _inFlight.Count == 0)
                break;
            fds[0] = new LibC.PollFd { Fd = _wakeFd, Events = LibC.PollIn };
            fds[1] = new LibC.PollFd { Fd = LibNfs.GetFd(_nfs), Events = (short)LibNfs.WhichEvents(_nfs) };
            int ready = LibC.Poll(fds, fds[1].Fd >= 0 ? 2u : 1u, _inFlight.Count > 0 ? TickMilliseconds : 1000);
            if (ready > 0 && fds[0].Revents != 0)
            {
                ulong count;
                LibC.Read(_wakeFd, &count, sizeof(ulong));
            }
            // Called on every wake-up, with no events too: libnfs runs its reconnect and timer work from here.
            if (LibNfs.Service(_nfs, ready > 0 && fds[1].Fd >= 0 ? fds[1].Revents : 0) < 0)
            {
                Die(new BlockException(Errno.EIO, $"NFS Error: {LibNfs.Error(_nfs)}"));
                return;
            }
            if (OverdueRequest() is { } overdue)
            {
                Die(new BlockException(Errno.EIO,
                    $"nfs: server {_settings.Server} did not answer {Describe(overdue.Operation)} for {_settings.RequestTimeout.TotalSeconds:0.#} s"));
                return;
            }
        }
        Destroy();
    }

    private void Initialise()
    {
        if (_settings.NetworkNamespace is { } ns)
            EnterNetworkNamespace(ns);
        _nfs = LibNfs.InitContext();
        if (_nfs == 0)
            throw new BlockException(Errno.ENOMEM, "Failed to init NFS context");
        if (_settings.Uid is { } uid)
            LibNfs.SetUid(_nfs, uid);
        if (_settings.Gid is { } gid)
            LibNfs.SetGid(_nfs, gid);
        if (_settings.TcpSynCount is { } syn)
            LibNfs.SetTcpSynCount(_nfs, syn);
        if (_settings.ReadaheadBytes is { } readahead)
            LibNfs.SetReadahead(_nfs, readahead);
        if (_settings.PageCachePages is { } pages)
            LibNfs.SetPageCache(_nfs, pages);
        if (_settings.Debug is { } debug)
            LibNfs.SetDebug(_nfs, debug);
    }

    /// <summary>Moves this thread, and so every socket libnfs opens from it, into the network namespace at <paramref name="path"/>.</summary>
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

    private unsafe void Start(NfsRequest request)
    {
        int id = unchecked(++_nextId) & int.MaxValue;
        // In the table before the call: a callback that libnfs makes from inside the call must find its request.
        _inFlight[id] = request;
        var done = (delegate* unmanaged<int, nint, nint, nint, void>)&OnDone;
        int rc = request.Operation switch
        {
            NfsOperation.Mount => LibNfs.MountAsync(_nfs, request.Server!, request.Path!, done, id),
            NfsOperation.Umount => LibNfs.UmountAsync(_nfs, done, id),
            NfsOperation.Open => LibNfs.OpenAsync(_nfs, request.Path!, request.Flags, done, id),
            NfsOperation.Create => LibNfs.CreatAsync(_nfs, request.Path!, request.Flags, done, id),
            NfsOperation.Close => LibNfs.CloseAsync(_nfs, request.File, done, id),
            NfsOperation.Stat => LibNfs.Fstat64Async(_nfs, request.File, done, id),
            NfsOperation.Read => LibNfs.PreadAsync(_nfs, request.File, (ulong)request.Offset, (ulong)request.Count, done, id),
            NfsOperation.Write => LibNfs.PwriteAsync(_nfs, request.File, (ulong)request.Offset, (ulong)request.Count, request.Data, done, id),
            NfsOperation.Fsync => LibNfs.FsyncAsync(_nfs, request.File, done, id),
            NfsOperation.Truncate => LibNfs.FtruncateAsync(_nfs, request.File, (ulong)request.Offset, done, id),
            _ => -1,
        };
        if (rc < 0 && _inFlight.Remove(id))
            request.Fail(new BlockException(Errno.EIO, $"NFS Error: {LibNfs.Error(_nfs)}"));
    }

    [UnmanagedCallersOnly]
    private static unsafe void OnDone(int status, nint nfs, nint data, nint id)
    {
        var mount = t_current;
        if (mount is null || !mount._inFlight.Remove((int)id, out var request))
            return;
        mount.Finish(request, status, data);
    }

    private unsafe void Finish(NfsRequest request, int status, nint data)
    {
        if (status < 0)
        {
            string text = data != 0 ? Marshal.PtrToStringUTF8(data) ?? string.Empty : LibNfs.Error(_nfs);
            request.Fail(new BlockException((Errno)(-status), Describe(request.Operation, text)));
            return;
        }
        switch (request.Operation)
        {
            case NfsOperation.Read:
            {
                int got = Math.Min(status, request.Count);
                request.Target.Slice(0, got).CopyFrom(new ReadOnlySpan<byte>((void*)data, got));
                break;
            }
            case NfsOperation.Stat:
                request.Stat = *(LibNfs.Stat64*)data;
                break;
            case NfsOperation.Open or NfsOperation.Create:
                request.ResultHandle = data;
                break;
            case NfsOperation.Mount:
                MaxTransfer = (int)Math.Clamp(Math.Min(LibNfs.GetReadMax(_nfs), LibNfs.GetWriteMax(_nfs)), 4096, 1 << 30);
                break;
        }
        request.Complete(status);
    }

    /// <summary>The request in flight that has waited too long (checked every <see cref="TickMilliseconds"/>), or null.</summary>
    private NfsRequest? OverdueRequest()
    {
        long now = Environment.TickCount64;
        if (_inFlight.Count == 0 || now - _lastDeadlineCheck < TickMilliseconds)
            return null;
        _lastDeadlineCheck = now;
        long limit = (long)_settings.RequestTimeout.TotalMilliseconds;
        foreach (var request in _inFlight.Values)
        {
            if (now - request.StartTicks >= limit)
                return request;
        }
        return null;
    }

    /// <summary>
    /// A failed call's message in the words libnfs's synchronous calls leave for <c>nfs_get_error</c>, which QEMU
    /// prints: <c>open call failed with "…"</c>; the mount's own text after <c>mount_cb: </c>; the reason alone for I/O.
    /// </summary>
    private string Describe(NfsOperation operation, string reason) => operation switch
    {
        // libnfs's synchronous mount, which QEMU calls, names its callback before the error.
        NfsOperation.Mount => "mount_cb: " + LibNfs.Error(_nfs),
        NfsOperation.Open => $"open call failed with \"{reason}\"",
        NfsOperation.Create => $"creat call failed with \"{reason}\"",
        NfsOperation.Stat => $"stat call failed with \"{reason}\"",
        NfsOperation.Truncate => $"ftruncate call failed with \"{reason}\"",
        _ => reason,
    };

    private static string Describe(NfsOperation operation) => operation switch
    {
        NfsOperation.Mount => "the mount",
        NfsOperation.Read => "a read",
        NfsOperation.Write => "a write",
        NfsOperation.Fsync => "a flush",
        _ => "a request",
    };

    /// <summary>Gives up on the server: destroys the context, then fails every request in flight or queued, and every later one.</summary>
    private void Die(BlockException error)
    {
        lock (_gate)
        {
            _dead = true;
            _deadError = error;
        }
        Destroy();
        foreach (var request in _inFlight.Values)
            request.Fail(error);
        _inFlight.Clear();
        while (_submitted.TryDequeue(out var request))
            request.Fail(error);
    }

    private void Destroy()
    {
        // Callbacks that libnfs makes while it tears down find no mount and are dropped: the requests are failed
        // after the context is gone, so no buffer is released while libnfs still holds it.
        t_current = null;
        if (_nfs != 0)
        {
            LibNfs.DestroyContext(_nfs);
            _nfs = 0;
        }
    }

    /// <summary>Stops the thread (nothing may be in flight) and frees the context.</summary>
    public void Dispose()
    {
        _stopping = true;
        Wake();
        _thread.Join();
        lock (_gate)
        {
            _dead = true;
            _deadError ??= new BlockException(Errno.EIO, "nfs: the mount is closed");
        }
        while (_submitted.TryDequeue(out var request))
            request.Fail(_deadError);
        LibC.Close(_wakeFd);
    }
}
