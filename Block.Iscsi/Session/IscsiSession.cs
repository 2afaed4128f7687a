using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Block.Graph;
using Block.Iscsi.Interop;

namespace Block.Iscsi.Session;

/// <summary>
/// One logged-in iSCSI session to one LUN, and the thread that runs libiscsi's event loop for it: commands are
/// queued from any thread, sent by the loop with libiscsi's <c>iscsi_*_task</c> calls, and completed from its
/// callbacks, with as many in flight as the callers send.
/// </summary>
/// <remarks>
/// <para>One thread per connection, whatever the queue depth: it polls libiscsi's socket (with the events
/// <c>iscsi_which_events</c> asks for) and an eventfd that submitters write only when the loop sleeps, so a busy
/// loop takes new commands without a system call per command. libiscsi's context is not thread-safe; only this
/// thread touches it after the login.</para>
/// <para>Every 250 ms the loop also calls <c>iscsi_service(0)</c>, which is how libiscsi's own command timeouts and
/// reconnects are driven. While libiscsi reconnects to a target that went away, its commands sit in the old
/// context where neither its timeouts nor <c>iscsi_scsi_cancel_task</c> reach them, which is why QEMU hangs there.
/// With a <c>timeout</c>, a command still unanswered a second after it declares the session dead: every command in
/// flight fails with ETIMEDOUT, the context is no longer serviced (so libiscsi never touches their buffers again),
/// and later commands fail at once.</para>
/// </remarks>
internal sealed unsafe class IscsiSession : IDisposable
{
    private const int TickMs = 250;
    private const int MaxRetries = 5;

    private readonly nint _context;
    private readonly int _lun;
    private readonly int _timeoutSeconds;
    private readonly int _wakeFd;
    private readonly ConcurrentQueue<IscsiCommand> _submitted = new();
    private readonly ConcurrentStack<IscsiCommand> _pool = new();
    private readonly List<IscsiCommand> _all = [];
    private readonly HashSet<IscsiCommand> _inFlight = [];
    private readonly byte* _zeroBlock;
    private readonly Thread _thread;
    private volatile string? _failure;
    private volatile bool _stopping;
    private int _polling;
    private int _wakeSent;

    private IscsiSession(nint context, IscsiSessionSettings settings, IscsiLunInfo lun, BlockNode? node)
    {
        _context = context;
        _lun = settings.Lun;
        _timeoutSeconds = settings.TimeoutSeconds;
        Info = lun;
        Node = node;
        _zeroBlock = (byte*)NativeMemory.AllocZeroed((nuint)lun.BlockSize);
        _wakeFd = EventLoopSyscalls.EventFd(0, EventLoopSyscalls.EfdCloexec | EventLoopSyscalls.EfdNonblock);
        if (_wakeFd < 0)
            throw new BlockException(Errno.EIO, $"eventfd failed: errno {Marshal.GetLastPInvokeError()}");
        _thread = new Thread(Run) { IsBackground = true, Name = $"iscsi {node?.NodeName ?? settings.Target}" };
        _thread.Start();
    }

    /// <summary>The LUN's geometry, provisioning and limits.</summary>
    public IscsiLunInfo Info { get; }

    /// <summary>The node the session serves (the <c>file</c> of its block status); null for a create's check.</summary>
    public BlockNode? Node { get; }

    /// <summary>Why the session is dead, or null while it works.</summary>
    public string? Failure => _failure;

    /// <summary>
    /// Logs in (blocking: call it off the caller's thread) and reads the LUN's capacity and limits, QEMU's open
    /// sequence: INQUIRY for the device type, READ CAPACITY(16), then VPD pages B0h and B2h when listed.
    /// </summary>
    /// <exception cref="BlockException">The login or a command failed; the message is libiscsi's.</exception>
    public static IscsiSession Connect(IscsiSessionSettings settings, BlockNode? node)
    {
        IscsiLibrary.EnsureLoaded();
        nint context = LibIscsi.CreateContext(settings.InitiatorName);
        if (context == 0)
            throw new BlockException(Errno.ENOMEM, "iSCSI: Could not create iSCSI context.");
        try
        {
            if (LibIscsi.SetTargetName(context, settings.Target) != 0)
                throw new BlockException(Errno.EINVAL, "iSCSI: Failed to set target name.");
            LibIscsi.SetSessionType(context, LibIscsi.SessionNormal);
            LibIscsi.SetHeaderDigest(context, settings.HeaderDigest);
            if (settings.User != null && LibIscsi.SetInitiatorUsernamePassword(context, settings.User, settings.Password ?? string.Empty) != 0)
                throw new BlockException(Errno.EINVAL, "Failed to set initiator username and password");
            if (settings.TimeoutSeconds > 0)
                LibIscsi.SetTimeout(context, settings.TimeoutSeconds);
            if (LibIscsi.FullConnectSync(context, settings.Portal, settings.Lun) != 0)
                throw new BlockException(Errno.EINVAL, $"iSCSI: Failed to connect to LUN : {LibIscsi.GetError(context)}");

            int deviceType = SyncCommand(context, LibIscsi.InquirySync(context, settings.Lun, 0, 0, 36), "INQUIRY",
                data => data.Length > 0 ? data[0] & 0x1f : -1);
            if (deviceType != 0)
                throw new BlockException(Errno.EINVAL, $"iSCSI: LUN {settings.Lun} is not a disk (peripheral device type {deviceType})");
            var info = SyncCommand(context, LibIscsi.ReadCapacity16Sync(context, settings.Lun), "READ CAPACITY(16)",
                IscsiLunInfo.FromReadCapacity16);
            // MODE SENSE(6), all pages, current values, no block descriptors: only the header's WP and DPOFUA bits
            // are read. A target that refuses it is taken as writable without FUA.
            nint modeSense = LibIscsi.ModeSense6Sync(context, settings.Lun, 1, 0, 0x3f, 0, 255);
            if (modeSense != 0)
            {
                try
                {
                    if (LibIscsi.TaskStatus(modeSense) == LibIscsi.StatusGood)
                        info.ApplyModeSense6(LibIscsi.TaskDataIn(modeSense));
                }
                finally
                {
                    LibIscsi.FreeTask(modeSense);
                }
            }
            byte[] pages = SyncCommand(context, LibIscsi.InquirySync(context, settings.Lun, 1, 0x00, 255), "INQUIRY (VPD 00h)",
                data => data.ToArray());
            if (IscsiLunInfo.ListsPage(pages, 0xB0))
            {
                byte[] limits = SyncCommand(context, LibIscsi.InquirySync(context, settings.Lun, 1, 0xB0, 64), "INQUIRY (VPD B0h)", data => data.ToArray());
                info.ApplyBlockLimits(limits);
            }
            if (IscsiLunInfo.ListsPage(pages, 0xB2))
            {
                byte[] provisioning = SyncCommand(context, LibIscsi.InquirySync(context, settings.Lun, 1, 0xB2, 64), "INQUIRY (VPD B2h)", data => data.ToArray());
                info.ApplyProvisioning(provisioning);
            }
            return new IscsiSession(context, settings, info, node);
        }
        catch
        {
            LibIscsi.DestroyContext(context);
            throw;
        }
    }

    private delegate T DataParser<T>(ReadOnlySpan<byte> data);

    private static T SyncCommand<T>(nint context, nint task, string name, DataParser<T> parse)
    {
        if (task == 0)
            throw new BlockException(Errno.EIO, $"iSCSI: {name} failed: {LibIscsi.GetError(context)}");
        try
        {
            int status = LibIscsi.TaskStatus(task);
            if (status != LibIscsi.StatusGood)
                throw new BlockException(Errno.EIO, $"iSCSI: {name} failed: {LibIscsi.GetError(context)}");
            return parse(LibIscsi.TaskDataIn(task));
        }
        finally
        {
            LibIscsi.FreeTask(task);
        }
    }

    /// <summary>A pooled command for one request.</summary>
    public IscsiCommand Rent()
    {
        if (_pool.TryPop(out var command))
            return command;
        command = new IscsiCommand(this);
        lock (_all)
            _all.Add(command);
        return command;
    }

    /// <summary>Takes a finished command back.</summary>
    public void Return(IscsiCommand command) => _pool.Push(command);

    /// <summary>Queues a started command for the loop thread.</summary>
    public void Submit(IscsiCommand command)
    {
        _submitted.Enqueue(command);
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _polling) == 1 && Interlocked.Exchange(ref _wakeSent, 1) == 0)
        {
            ulong one = 1;
            EventLoopSyscalls.Write(_wakeFd, &one, sizeof(ulong));
        }
    }

    private void Run()
    {
        var fds = stackalloc EventLoopSyscalls.PollFd[2];
        long nextTick = Environment.TickCount64 + TickMs;
        while (true)
        {
            while (_submitted.TryDequeue(out var command))
                Issue(command);
            if (_stopping)
                break;

            bool serviced = _failure is null;
            int events = serviced ? LibIscsi.WhichEvents(_context) : 0;
            fds[0].Fd = events != 0 ? LibIscsi.GetFd(_context) : -1;
            fds[0].Events = (short)events;
            fds[0].Revents = 0;
            fds[1].Fd = _wakeFd;
            fds[1].Events = EventLoopSyscalls.PollIn;
            fds[1].Revents = 0;

            Volatile.Write(ref _polling, 1);
            Interlocked.MemoryBarrier();
            long now = Environment.TickCount64;
            int wait = _submitted.IsEmpty ? (int)Math.Clamp(nextTick - now, 0, TickMs) : 0;
            EventLoopSyscalls.Poll(fds, 2, wait);
            Volatile.Write(ref _polling, 0);

            if (fds[1].Revents != 0)
            {
                ulong value;
                EventLoopSyscalls.Read(_wakeFd, &value, sizeof(ulong));
                Volatile.Write(ref _wakeSent, 0);
            }
            if (serviced && fds[0].Revents != 0)
                LibIscsi.Service(_context, fds[0].Revents);
            now = Environment.TickCount64;
            if (now >= nextTick)
            {
                nextTick = now + TickMs;
                if (_failure is null)
                    LibIscsi.Service(_context, 0);
                CheckDeadlines(now);
            }
        }
    }

    /// <summary>Sends a command (loop thread).</summary>
    private void Issue(IscsiCommand command)
    {
        if (_failure is { } failure)
        {
            command.Complete(new BlockException(Errno.EIO, failure));
            return;
        }
        nint privateData = GCHandle.ToIntPtr(command.Handle);
        delegate* unmanaged<nint, int, nint, nint, void> callback = &OnTaskDone;
        nint task = command.Kind switch
        {
            IscsiCommandKind.Read => LibIscsi.Read16IovTask(_context, _lun, command.Lba, command.DataLength, Info.BlockSize,
                0, 0, 0, 0, 0, callback, privateData, command.Iov, command.IovCount),
            IscsiCommandKind.Write => LibIscsi.Write16IovTask(_context, _lun, command.Lba, null, command.DataLength, Info.BlockSize,
                0, 0, command.Fua ? 1 : 0, 0, 0, callback, privateData, command.Iov, command.IovCount),
            IscsiCommandKind.Flush => LibIscsi.SynchronizeCache10Task(_context, _lun, 0, 0, 0, 0, callback, privateData),
            IscsiCommandKind.Unmap => IssueUnmap(command, callback, privateData),
            IscsiCommandKind.WriteZeroes => LibIscsi.WriteSame16Task(_context, _lun, command.Lba, _zeroBlock, (uint)Info.BlockSize,
                command.Blocks, 0, command.Unmap ? 1 : 0, 0, 0, callback, privateData),
            IscsiCommandKind.LbaStatus => LibIscsi.GetLbaStatusTask(_context, _lun, command.Lba, 8 + 16, callback, privateData),
            _ => 0,
        };
        if (task == 0)
        {
            command.Complete(new BlockException(Errno.EIO, $"iSCSI: could not send {command.Kind}: {LibIscsi.GetError(_context)}"));
            return;
        }
        command.Task = task;
        command.StartedMs = Environment.TickCount64;
        _inFlight.Add(command);
    }

    private nint IssueUnmap(IscsiCommand command, delegate* unmanaged<nint, int, nint, nint, void> callback, nint privateData)
    {
        command.UnmapList->Lba = command.Lba;
        command.UnmapList->Blocks = command.Blocks;
        return LibIscsi.UnmapTask(_context, _lun, 0, 0, command.UnmapList, 1, callback, privateData);
    }

    [UnmanagedCallersOnly]
    private static void OnTaskDone(nint context, int status, nint commandData, nint privateData)
    {
        var command = (IscsiCommand)GCHandle.FromIntPtr(privateData).Target!;
        command.Session.Finished(command, status, commandData);
    }

    /// <summary>A task ended (loop thread, inside <c>iscsi_service</c>, or while the context is destroyed).</summary>
    private void Finished(IscsiCommand command, int status, nint task)
    {
        if (task == 0 || task != command.Task)
        {
            // Not the task this command waits for: nothing to complete.
            if (task != 0)
                LibIscsi.FreeTask(task);
            return;
        }
        command.Task = 0;
        if (command.Orphaned)
        {
            LibIscsi.FreeTask(task);
            return;
        }
        _inFlight.Remove(command);

        Exception? error = null;
        BlockStatus result = default;
        if (status == LibIscsi.StatusGood)
        {
            if (command.Kind == IscsiCommandKind.LbaStatus)
                error = ParseLbaStatus(command, LibIscsi.TaskDataIn(task), out result);
        }
        else if (ShouldRetry(command, status, task))
        {
            LibIscsi.FreeTask(task);
            command.Retries++;
            Issue(command);
            return;
        }
        else
        {
            error = TaskError(command, status, task);
        }
        LibIscsi.FreeTask(task);
        command.Complete(error, result);
    }

    private static bool ShouldRetry(IscsiCommand command, int status, nint task)
    {
        if (command.Retries >= MaxRetries)
            return false;
        if (status is LibIscsi.StatusBusy or LibIscsi.StatusTaskSetFull)
            return true;
        // A unit attention (after a reconnect, a LUN change) is reported once; the command itself was not run.
        return status == LibIscsi.StatusCheckCondition && LibIscsi.TaskSenseKey(task) == LibIscsi.SenseUnitAttention;
    }

    private BlockException TaskError(IscsiCommand command, int status, nint task)
    {
        string what = $"iSCSI: {CommandName(command.Kind)} at LBA {command.Lba} failed";
        switch (status)
        {
            case LibIscsi.StatusCheckCondition:
            {
                int key = LibIscsi.TaskSenseKey(task);
                int ascq = LibIscsi.TaskAscq(task);
                var errno = key switch
                {
                    LibIscsi.SenseNotReady => Errno.EBUSY,
                    LibIscsi.SenseDataProtection => ascq == LibIscsi.AscqSpaceAllocationFailed ? Errno.ENOSPC : Errno.EACCES,
                    LibIscsi.SenseIllegalRequest => Errno.EINVAL,
                    _ => Errno.EIO,
                };
                if (key == LibIscsi.SenseIllegalRequest && command.Kind == IscsiCommandKind.WriteZeroes)
                    errno = Errno.ENOTSUP;
                return new BlockException(errno, $"{what}: sense key 0x{key:x} ASC/ASCQ 0x{ascq:x4}");
            }
            case LibIscsi.StatusTimeout:
                return new BlockException(Errno.ETIMEDOUT, $"{what}: no answer within {_timeoutSeconds} s");
            case LibIscsi.StatusCancelled:
                return new BlockException(Errno.EIO, $"{what}: cancelled");
            default:
                return new BlockException(Errno.EIO, $"{what}: {LibIscsi.GetError(_context)}");
        }
    }

    private static string CommandName(IscsiCommandKind kind) => kind switch
    {
        IscsiCommandKind.Read => "READ(16)",
        IscsiCommandKind.Write => "WRITE(16)",
        IscsiCommandKind.Flush => "SYNCHRONIZE CACHE(10)",
        IscsiCommandKind.Unmap => "UNMAP",
        IscsiCommandKind.WriteZeroes => "WRITE SAME(16)",
        _ => "GET LBA STATUS",
    };

    /// <summary>
    /// Reads the first descriptor of GET LBA STATUS's answer: mapped blocks are data, deallocated and anchored ones
    /// are not, and read as zeroes when the LUN says LBPRZ (QEMU's reading).
    /// </summary>
    private BlockException? ParseLbaStatus(IscsiCommand command, ReadOnlySpan<byte> data, out BlockStatus status)
    {
        status = default;
        if (data.Length < 8 + 16)
            return new BlockException(Errno.EIO, $"iSCSI: GET LBA STATUS at LBA {command.Lba} returned no descriptor");
        var descriptor = data.Slice(8, 16);
        ulong start = BinaryPrimitives.ReadUInt64BigEndian(descriptor);
        uint blocks = BinaryPrimitives.ReadUInt32BigEndian(descriptor[8..]);
        int provisioning = descriptor[12] & 0x0f;
        if (start > command.Lba || start + blocks <= command.Lba)
            return new BlockException(Errno.EIO, $"iSCSI: GET LBA STATUS at LBA {command.Lba} described LBA {start} instead");
        long offset = command.StatusOffset;
        long bytes = Math.Min((long)(start + blocks) * Info.BlockSize - offset, command.StatusLimitBytes);
        BlockStatusFlags flags = BlockStatusFlags.OffsetValid;
        if (provisioning == 0)
            flags |= BlockStatusFlags.Data | BlockStatusFlags.Allocated;
        else if (Info.Lbprz)
            flags |= BlockStatusFlags.Zero | BlockStatusFlags.Allocated;
        status = new BlockStatus(flags, bytes, offset, Node);
        return null;
    }

    /// <summary>Declares the session dead when a command outlived the timeout by a tick (loop thread).</summary>
    private void CheckDeadlines(long now)
    {
        if (_timeoutSeconds <= 0 || _inFlight.Count == 0)
            return;
        long limit = _timeoutSeconds * 1000L + 1000;
        foreach (var command in _inFlight)
        {
            if (now - command.StartedMs > limit)
            {
                Fail(Errno.ETIMEDOUT, $"iSCSI: no answer from the target within the timeout of {_timeoutSeconds} s; the connection is given up");
                return;
            }
        }
    }

    private void Fail(Errno errno, string reason)
    {
        _failure = reason;
        foreach (var command in _inFlight)
        {
            command.Orphaned = true;
            command.Complete(new BlockException(errno, reason));
        }
        _inFlight.Clear();
    }

    /// <summary>Stops the loop (nothing is in flight but orphans) and closes the connection.</summary>
    public void Dispose()
    {
        _stopping = true;
        ulong one = 1;
        EventLoopSyscalls.Write(_wakeFd, &one, sizeof(ulong));
        _thread.Join();
        // Destroying the context cancels what it still holds (orphans): their callbacks find stale tasks.
        LibIscsi.DestroyContext(_context);
        EventLoopSyscalls.Close(_wakeFd);
        NativeMemory.Free(_zeroBlock);
        lock (_all)
        {
            foreach (var command in _all)
                command.Free();
            _all.Clear();
        }
    }
}
