using System.Runtime.InteropServices;

namespace Block.Ssh.Interop;

/// <summary>
/// The calls of the system libssh (Debian's libssh-4, the library QEMU 7.2's ssh driver uses) that carry the SSH
/// transport: connect, host key, authentication and one session channel with the <c>sftp</c> subsystem. SFTP itself
/// is ours (<see cref="Sftp.SftpChannel"/>).
/// </summary>
/// <remarks>A session is not thread-safe: every call on one session is made by one thread at a time.</remarks>
internal static unsafe partial class LibSsh
{
    public const string Library = "libssh.so.4";

    public const int Ok = 0;
    public const int Error = -1;
    public const int Eof = -127;
    public const int AuthSuccess = 0;
    public const int AuthError = -1;
    public const int AuthMethodPublicKey = 0x0004;

    /// <summary><c>enum ssh_options_e</c> members used here.</summary>
    public enum Option
    {
        Host = 0,
        Port = 1,
        User = 4,
        NoDelay = 36,
        IdentityAgent = 42,
    }

    [LibraryImport(Library, EntryPoint = "ssh_new")]
    public static partial nint New();

    [LibraryImport(Library, EntryPoint = "ssh_free")]
    public static partial void Free(nint session);

    [LibraryImport(Library, EntryPoint = "ssh_options_set", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SetOption(nint session, Option option, string value);

    [LibraryImport(Library, EntryPoint = "ssh_options_set")]
    public static partial int SetOption(nint session, Option option, void* value);

    [LibraryImport(Library, EntryPoint = "ssh_options_parse_config")]
    public static partial int ParseConfig(nint session, nint filename);

    [LibraryImport(Library, EntryPoint = "ssh_connect")]
    public static partial int Connect(nint session);

    [LibraryImport(Library, EntryPoint = "ssh_disconnect")]
    public static partial void Disconnect(nint session);

    [LibraryImport(Library, EntryPoint = "ssh_get_error")]
    private static partial nint GetErrorPointer(nint sessionOrBind);

    /// <summary>The last error libssh recorded on <paramref name="session"/>.</summary>
    public static string GetError(nint session) => Marshal.PtrToStringUTF8(GetErrorPointer(session)) ?? string.Empty;

    [LibraryImport(Library, EntryPoint = "ssh_get_fd")]
    public static partial int GetFd(nint session);

    [LibraryImport(Library, EntryPoint = "ssh_get_server_publickey")]
    public static partial int GetServerPublicKey(nint session, out nint key);

    [LibraryImport(Library, EntryPoint = "ssh_key_free")]
    public static partial void KeyFree(nint key);

    [LibraryImport(Library, EntryPoint = "ssh_pki_export_pubkey_base64")]
    public static partial int ExportPublicKeyBase64(nint key, out nint base64);

    [LibraryImport(Library, EntryPoint = "ssh_pki_import_privkey_file", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int ImportPrivateKeyFile(string filename, nint passphrase, nint authFunction, nint authData, out nint key);

    [LibraryImport(Library, EntryPoint = "ssh_string_free_char")]
    public static partial void StringFreeChar(nint s);

    [LibraryImport(Library, EntryPoint = "ssh_userauth_none")]
    public static partial int UserAuthNone(nint session, nint username);

    [LibraryImport(Library, EntryPoint = "ssh_userauth_list")]
    public static partial int UserAuthList(nint session, nint username);

    [LibraryImport(Library, EntryPoint = "ssh_userauth_publickey_auto")]
    public static partial int UserAuthPublicKeyAuto(nint session, nint username, nint passphrase);

    [LibraryImport(Library, EntryPoint = "ssh_userauth_publickey")]
    public static partial int UserAuthPublicKey(nint session, nint username, nint privateKey);

    [LibraryImport(Library, EntryPoint = "ssh_channel_new")]
    public static partial nint ChannelNew(nint session);

    [LibraryImport(Library, EntryPoint = "ssh_channel_open_session")]
    public static partial int ChannelOpenSession(nint channel);

    [LibraryImport(Library, EntryPoint = "ssh_channel_request_subsystem", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int ChannelRequestSubsystem(nint channel, string subsystem);

    [LibraryImport(Library, EntryPoint = "ssh_channel_write")]
    public static partial int ChannelWrite(nint channel, byte* data, uint length);

    [LibraryImport(Library, EntryPoint = "ssh_channel_read_nonblocking")]
    public static partial int ChannelReadNonblocking(nint channel, byte* destination, uint count, int isStderr);

    [LibraryImport(Library, EntryPoint = "ssh_channel_read_timeout")]
    public static partial int ChannelReadTimeout(nint channel, byte* destination, uint count, int isStderr, int timeoutMilliseconds);

    [LibraryImport(Library, EntryPoint = "ssh_channel_send_eof")]
    public static partial int ChannelSendEof(nint channel);

    [LibraryImport(Library, EntryPoint = "ssh_channel_close")]
    public static partial int ChannelClose(nint channel);

    [LibraryImport(Library, EntryPoint = "ssh_channel_free")]
    public static partial void ChannelFree(nint channel);

    /// <summary>Null if libssh loads, else the message an open without it gives.</summary>
    internal static string? Probe() =>
        NativeLibrary.TryLoad(Library, typeof(LibSsh).Assembly, null, out _)
            ? null
            : $"the ssh driver needs the system libssh ({Library}, Debian's libssh-4), which is not installed";
}

/// <summary>The libc calls of the channel's thread: <c>poll</c>, and an <c>eventfd</c> to wake it.</summary>
internal static unsafe partial class LibC
{
    public const short PollIn = 0x001;
    public const int EfdCloexec = 0x80000;
    public const int EfdNonblock = 0x800;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMilliseconds);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);
}
