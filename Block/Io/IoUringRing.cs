using Block.Interop;

namespace Block.Io;

/// <summary>
/// One io_uring instance: the descriptor, the submission and completion rings and the SQE array mapped into the
/// process, with the head/tail protocol the kernel expects.
/// </summary>
/// <remarks>
/// <para>The submission side has one producer at a time (the engine holds its submission lock around
/// <see cref="TryGetSqe"/> and <see cref="Publish"/>); the completion side has one consumer (the engine's completion
/// thread). Tails written for the kernel use release stores and heads it writes are read with acquire loads, the
/// same barriers liburing uses.</para>
/// <para>The SQ index array is filled once with the identity (slot <c>i</c> holds SQE <c>i</c>), so a submission is
/// "fill the SQE at tail, bump tail".</para>
/// </remarks>
internal sealed unsafe class IoUringRing : IDisposable
{
    private readonly int _fd;
    private readonly byte* _sqRing;
    private readonly nuint _sqRingSize;
    private readonly byte* _cqRing;
    private readonly nuint _cqRingSize;
    private readonly IoUring.Sqe* _sqes;
    private readonly nuint _sqesSize;
    private readonly uint* _sqHead;
    private readonly uint* _sqTail;
    private readonly uint _sqMask;
    private readonly uint* _cqHead;
    private readonly uint* _cqTail;
    private readonly uint _cqMask;
    private readonly IoUring.Cqe* _cqes;
    private readonly bool[] _supported;
    private uint _sqTailLocal;
    private uint _cqHeadLocal;
    private bool _disposed;

    private IoUringRing(int fd, in IoUring.Params p, byte* sqRing, nuint sqRingSize, byte* cqRing, nuint cqRingSize,
        IoUring.Sqe* sqes, nuint sqesSize, bool[] supported)
    {
        _fd = fd;
        _sqRing = sqRing;
        _sqRingSize = sqRingSize;
        _cqRing = cqRing;
        _cqRingSize = cqRingSize;
        _sqes = sqes;
        _sqesSize = sqesSize;
        _sqHead = (uint*)(sqRing + p.SqOff.Head);
        _sqTail = (uint*)(sqRing + p.SqOff.Tail);
        _sqMask = *(uint*)(sqRing + p.SqOff.RingMask);
        SqEntries = *(uint*)(sqRing + p.SqOff.RingEntries);
        _cqHead = (uint*)(cqRing + p.CqOff.Head);
        _cqTail = (uint*)(cqRing + p.CqOff.Tail);
        _cqMask = *(uint*)(cqRing + p.CqOff.RingMask);
        CqEntries = *(uint*)(cqRing + p.CqOff.RingEntries);
        _cqes = (IoUring.Cqe*)(cqRing + p.CqOff.Cqes);
        _supported = supported;
        uint* array = (uint*)(sqRing + p.SqOff.Array);
        for (uint i = 0; i < SqEntries; i++)
            array[i] = i;
        _sqTailLocal = *_sqTail;
        _cqHeadLocal = *_cqHead;
    }

    /// <summary>Submission queue slots.</summary>
    public uint SqEntries { get; }

    /// <summary>Completion queue slots (twice the submission slots unless the kernel says otherwise).</summary>
    public uint CqEntries { get; }

    /// <summary>
    /// Creates a ring of <paramref name="entries"/> submission slots, or fails with the errno of the call the kernel
    /// refused (ENOSYS without io_uring, EPERM under a seccomp filter or <c>io_uring_disabled</c>, ENOMEM over the
    /// locked-memory limit of old kernels).
    /// </summary>
    /// <exception cref="BlockException">The kernel refused; the message names the call and the errno.</exception>
    public static IoUringRing Create(uint entries)
    {
        IoUring.Params p = default;
        p.Flags = IoUring.SetupClamp | IoUring.SetupSubmitAll;
        int fd = IoUring.Setup(entries, &p);
        if (fd < 0 && LibC.LastErrno == (int)Errno.EINVAL)
        {
            // Kernels before 5.18 do not know IORING_SETUP_SUBMIT_ALL.
            p = default;
            p.Flags = IoUring.SetupClamp;
            fd = IoUring.Setup(entries, &p);
        }
        if (fd < 0)
            ThrowHelper.ThrowFromErrno(LibC.LastErrno, "io_uring_setup");

        byte* sqRing = null, cqRing = null;
        IoUring.Sqe* sqes = null;
        nuint sqRingSize = p.SqOff.Array + p.SqEntries * sizeof(uint);
        nuint cqRingSize = p.CqOff.Cqes + p.CqEntries * (nuint)sizeof(IoUring.Cqe);
        nuint sqesSize = p.SqEntries * (nuint)sizeof(IoUring.Sqe);
        bool single = (p.Features & IoUring.FeatSingleMmap) != 0;
        try
        {
            if (single)
                sqRingSize = cqRingSize = Math.Max(sqRingSize, cqRingSize);
            sqRing = Map(fd, sqRingSize, IoUring.OffSqRing, "mmap (SQ ring)");
            cqRing = single ? sqRing : Map(fd, cqRingSize, IoUring.OffCqRing, "mmap (CQ ring)");
            sqes = (IoUring.Sqe*)Map(fd, sqesSize, IoUring.OffSqes, "mmap (SQEs)");
            var supported = ProbeOpcodes(fd);
            foreach (byte op in (ReadOnlySpan<byte>)[IoUring.OpNop, IoUring.OpReadv, IoUring.OpWritev, IoUring.OpFsync, IoUring.OpFallocate])
            {
                if (!supported[op])
                    ThrowHelper.Throw(Errno.ENOTSUP, $"io_uring: the kernel lacks opcode {op}");
            }
            return new IoUringRing(fd, p, sqRing, sqRingSize, cqRing, single ? 0 : cqRingSize, sqes, sqesSize, supported);
        }
        catch
        {
            if (sqes != null)
                IoUring.Munmap(sqes, sqesSize);
            if (cqRing != null && cqRing != sqRing)
                IoUring.Munmap(cqRing, cqRingSize);
            if (sqRing != null)
                IoUring.Munmap(sqRing, sqRingSize);
            LibC.Close(fd);
            throw;
        }
    }

    private static byte* Map(int fd, nuint size, long offset, string what)
    {
        void* p = IoUring.Mmap(null, size, IoUring.ProtRead | IoUring.ProtWrite, IoUring.MapShared | IoUring.MapPopulate, fd, offset);
        if (p == IoUring.MapFailed)
            ThrowHelper.ThrowFromErrno(LibC.LastErrno, what);
        return (byte*)p;
    }

    /// <summary>Which opcodes the kernel supports (IORING_REGISTER_PROBE, Linux 5.6); all false before that.</summary>
    private static bool[] ProbeOpcodes(int fd)
    {
        const int count = 256;
        var supported = new bool[count];
        int size = sizeof(IoUring.Probe) + count * sizeof(IoUring.ProbeOp);
        byte* buffer = stackalloc byte[size];
        new Span<byte>(buffer, size).Clear();
        if (IoUring.Register(fd, IoUring.RegisterProbe, buffer, count) < 0)
            return supported;
        var probe = (IoUring.Probe*)buffer;
        var ops = (IoUring.ProbeOp*)(buffer + sizeof(IoUring.Probe));
        for (int i = 0; i < probe->OpsLength; i++)
        {
            if ((ops[i].Flags & IoUring.OpSupported) != 0)
                supported[ops[i].Op] = true;
        }
        return supported;
    }

    /// <summary>True when the kernel supports <paramref name="opcode"/>.</summary>
    public bool Supports(byte opcode) => _supported[opcode];

    /// <summary>
    /// The next free SQE, cleared, or null when the submission queue is full. Caller holds the submission lock and
    /// calls <see cref="Publish"/> once the SQE is filled.
    /// </summary>
    public IoUring.Sqe* TryGetSqe()
    {
        uint head = Volatile.Read(ref *_sqHead);
        if (_sqTailLocal - head >= SqEntries)
            return null;
        var sqe = &_sqes[_sqTailLocal & _sqMask];
        *sqe = default;
        _sqTailLocal++;
        return sqe;
    }

    /// <summary>Makes the SQEs filled since the last call visible to the kernel (release store of the tail).</summary>
    public void Publish() => Volatile.Write(ref *_sqTail, _sqTailLocal);

    /// <summary>SQEs published and not yet consumed by the kernel.</summary>
    public uint Unsubmitted => Volatile.Read(ref *_sqTail) - Volatile.Read(ref *_sqHead);

    /// <summary><c>io_uring_enter</c>; returns the SQEs consumed or −errno.</summary>
    public int Enter(uint toSubmit, uint minComplete, uint flags)
    {
        int r = IoUring.Enter(_fd, toSubmit, minComplete, flags);
        return r >= 0 ? r : -LibC.LastErrno;
    }

    /// <summary>Takes the oldest completion, if any (completion thread only).</summary>
    public bool TryTakeCqe(out ulong userData, out int result)
    {
        uint tail = Volatile.Read(ref *_cqTail);
        if (_cqHeadLocal == tail)
        {
            userData = 0;
            result = 0;
            return false;
        }
        var cqe = &_cqes[_cqHeadLocal & _cqMask];
        userData = cqe->UserData;
        result = cqe->Result;
        _cqHeadLocal++;
        // Releasing the slot before the request's continuation runs keeps the CQ from filling during a long batch.
        Volatile.Write(ref *_cqHead, _cqHeadLocal);
        return true;
    }

    /// <summary>Unmaps the rings and closes the descriptor; the kernel cancels or finishes what is left.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        IoUring.Munmap(_sqes, _sqesSize);
        if (_cqRingSize != 0)
            IoUring.Munmap(_cqRing, _cqRingSize);
        IoUring.Munmap(_sqRing, _sqRingSize);
        LibC.Close(_fd);
    }
}
