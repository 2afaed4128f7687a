using System.Runtime.InteropServices;

namespace Block.Iscsi.Interop;

/// <summary>
/// The part of libiscsi's C API the iscsi driver uses, bound to <c>libiscsi.so.7</c> (Debian's libiscsi7) on first call.
/// </summary>
/// <remarks>
/// A context is not thread-safe: after the login, every call on it is made by the session's event-loop thread.
/// The <c>scsi_task</c> fields read here (<see cref="TaskStatusOffset"/> and the rest) are those of libiscsi 1.19's
/// public <c>scsi-lowlevel.h</c> on 64-bit Linux.
/// </remarks>
internal static unsafe partial class LibIscsi
{
    public const string Library = "libiscsi.so.7";

    public const int SessionNormal = 2;

    public const int StatusGood = 0;
    public const int StatusCheckCondition = 2;
    public const int StatusBusy = 8;
    public const int StatusTaskSetFull = 0x28;
    public const int StatusCancelled = 0x0f000000;
    public const int StatusError = 0x0f000001;
    public const int StatusTimeout = 0x0f000002;

    public const int SenseNotReady = 0x02;
    public const int SenseMediumError = 0x03;
    public const int SenseIllegalRequest = 0x05;
    public const int SenseUnitAttention = 0x06;
    public const int SenseDataProtection = 0x07;

    /// <summary>ASC/ASCQ 0x2707: space allocation failed write protect (a thin LUN out of space).</summary>
    public const int AscqSpaceAllocationFailed = 0x2707;

    /// <summary>Offset of <c>int status</c> in <c>struct scsi_task</c>.</summary>
    public const int TaskStatusOffset = 0;

    /// <summary>Offset of <c>sense.key</c> (an enum) in <c>struct scsi_task</c>.</summary>
    public const int TaskSenseKeyOffset = 52;

    /// <summary>Offset of <c>sense.ascq</c> (an int holding ASC and ASCQ) in <c>struct scsi_task</c>.</summary>
    public const int TaskSenseAscqOffset = 56;

    /// <summary>Offset of <c>datain.size</c> in <c>struct scsi_task</c>; <c>datain.data</c> follows at +8.</summary>
    public const int TaskDataInOffset = 64;

    [LibraryImport(Library, EntryPoint = "iscsi_create_context", StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint CreateContext(string initiatorName);

    [LibraryImport(Library, EntryPoint = "iscsi_destroy_context")]
    public static partial int DestroyContext(nint iscsi);

    [LibraryImport(Library, EntryPoint = "iscsi_get_error")]
    public static partial byte* GetErrorRaw(nint iscsi);

    [LibraryImport(Library, EntryPoint = "iscsi_set_targetname", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SetTargetName(nint iscsi, string target);

    [LibraryImport(Library, EntryPoint = "iscsi_set_session_type")]
    public static partial int SetSessionType(nint iscsi, int type);

    [LibraryImport(Library, EntryPoint = "iscsi_set_header_digest")]
    public static partial int SetHeaderDigest(nint iscsi, int digest);

    [LibraryImport(Library, EntryPoint = "iscsi_set_initiator_username_pwd", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SetInitiatorUsernamePassword(nint iscsi, string user, string password);

    [LibraryImport(Library, EntryPoint = "iscsi_set_timeout")]
    public static partial int SetTimeout(nint iscsi, int seconds);

    [LibraryImport(Library, EntryPoint = "iscsi_full_connect_sync", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FullConnectSync(nint iscsi, string portal, int lun);

    [LibraryImport(Library, EntryPoint = "iscsi_get_fd")]
    public static partial int GetFd(nint iscsi);

    [LibraryImport(Library, EntryPoint = "iscsi_which_events")]
    public static partial int WhichEvents(nint iscsi);

    [LibraryImport(Library, EntryPoint = "iscsi_service")]
    public static partial int Service(nint iscsi, int revents);

    [LibraryImport(Library, EntryPoint = "iscsi_inquiry_sync")]
    public static partial nint InquirySync(nint iscsi, int lun, int evpd, int pageCode, int maxSize);

    [LibraryImport(Library, EntryPoint = "iscsi_modesense6_sync")]
    public static partial nint ModeSense6Sync(nint iscsi, int lun, int dbd, int pageControl, int pageCode, int subPageCode, byte allocationLength);

    [LibraryImport(Library, EntryPoint = "iscsi_readcapacity16_sync")]
    public static partial nint ReadCapacity16Sync(nint iscsi, int lun);

    [LibraryImport(Library, EntryPoint = "iscsi_read16_iov_task")]
    public static partial nint Read16IovTask(nint iscsi, int lun, ulong lba, uint dataLength, int blockSize,
        int rdprotect, int dpo, int fua, int fuaNv, int group, delegate* unmanaged<nint, int, nint, nint, void> callback,
        nint privateData, ScsiIovec* iov, int niov);

    [LibraryImport(Library, EntryPoint = "iscsi_write16_iov_task")]
    public static partial nint Write16IovTask(nint iscsi, int lun, ulong lba, byte* data, uint dataLength, int blockSize,
        int wrprotect, int dpo, int fua, int fuaNv, int group, delegate* unmanaged<nint, int, nint, nint, void> callback,
        nint privateData, ScsiIovec* iov, int niov);

    [LibraryImport(Library, EntryPoint = "iscsi_synchronizecache10_task")]
    public static partial nint SynchronizeCache10Task(nint iscsi, int lun, int lba, int blocks, int syncNv, int immediate,
        delegate* unmanaged<nint, int, nint, nint, void> callback, nint privateData);

    [LibraryImport(Library, EntryPoint = "iscsi_writesame16_task")]
    public static partial nint WriteSame16Task(nint iscsi, int lun, ulong lba, byte* data, uint dataLength, uint blocks,
        int anchor, int unmap, int wrprotect, int group, delegate* unmanaged<nint, int, nint, nint, void> callback, nint privateData);

    [LibraryImport(Library, EntryPoint = "iscsi_unmap_task")]
    public static partial nint UnmapTask(nint iscsi, int lun, int anchor, int group, UnmapDescriptor* list, int listLength,
        delegate* unmanaged<nint, int, nint, nint, void> callback, nint privateData);

    [LibraryImport(Library, EntryPoint = "iscsi_get_lba_status_task")]
    public static partial nint GetLbaStatusTask(nint iscsi, int lun, ulong lba, uint allocationLength,
        delegate* unmanaged<nint, int, nint, nint, void> callback, nint privateData);

    [LibraryImport(Library, EntryPoint = "scsi_free_scsi_task")]
    public static partial void FreeTask(nint task);

    /// <summary>libiscsi's <c>struct scsi_iovec</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ScsiIovec
    {
        public nint Base;
        public nuint Length;
    }

    /// <summary>libiscsi's <c>struct unmap_list</c>: one extent of an UNMAP command.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct UnmapDescriptor
    {
        public ulong Lba;
        public uint Blocks;
    }

    /// <summary>The context's last error text.</summary>
    public static string GetError(nint iscsi) => Marshal.PtrToStringUTF8((nint)GetErrorRaw(iscsi)) ?? "unknown error";

    /// <summary>The SCSI status a finished task carries.</summary>
    public static int TaskStatus(nint task) => *(int*)(task + TaskStatusOffset);

    /// <summary>The sense key of a task that ended in CHECK CONDITION.</summary>
    public static int TaskSenseKey(nint task) => *(int*)(task + TaskSenseKeyOffset);

    /// <summary>ASC and ASCQ of a task that ended in CHECK CONDITION (<c>asc &lt;&lt; 8 | ascq</c>).</summary>
    public static int TaskAscq(nint task) => *(int*)(task + TaskSenseAscqOffset);

    /// <summary>The data a task read into libiscsi's own buffer (INQUIRY, READ CAPACITY, GET LBA STATUS).</summary>
    public static ReadOnlySpan<byte> TaskDataIn(nint task)
    {
        int size = *(int*)(task + TaskDataInOffset);
        byte* data = *(byte**)(task + TaskDataInOffset + 8);
        return data == null || size <= 0 ? default : new ReadOnlySpan<byte>(data, size);
    }
}
