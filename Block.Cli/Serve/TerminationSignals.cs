using System.Runtime.InteropServices;

namespace Block.Cli.Serve;

/// <summary>
/// SIGTERM, SIGINT and SIGHUP ask <c>blk serve</c> to stop cleanly, as they ask qemu-storage-daemon 7.2 (which exits
/// 0 on each, even when started with them ignored).
/// </summary>
/// <remarks>
/// A process started in the background by a non-interactive shell inherits SIGINT as ignored, and the .NET runtime
/// keeps an inherited ignore of SIGINT for good: a <see cref="PosixSignalRegistration"/> never fires then, and
/// resetting the disposition afterwards only restores the default (death by the signal, exit status 130). So
/// <see cref="EnsureDeliverable"/> resets an ignored SIGINT and re-executes the same command line, in the same
/// process, before anything is opened. An ignored SIGHUP only needs the reset.
/// Registration happens before the first monitor or export serves, so a signal sent as soon as a client is
/// connected is never lost.
/// </remarks>
internal sealed partial class TerminationSignals : IDisposable
{
    private const int SigHup = 1, SigInt = 2;
    private static readonly nint SigDfl = 0, SigIgn = 1;

    private readonly TaskCompletionSource _received = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly PosixSignalRegistration[] _registrations;

    public TerminationSignals()
    {
        if (IsIgnored(SigHup))
            _ = Signal(SigHup, SigDfl);
        _registrations =
        [
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
            PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal),
        ];
    }

    /// <summary>Completes when the first of the three signals arrives.</summary>
    public Task Received => _received.Task;

    /// <summary>
    /// Makes SIGINT deliverable to a registration: when it was inherited as ignored, resets it and re-executes this
    /// command line (same process id, same environment). Returns only when no re-execution was needed or it failed.
    /// </summary>
    public static void EnsureDeliverable()
    {
        if (!OperatingSystem.IsLinux() || !IsIgnored(SigInt))
            return;
        string[] arguments;
        try
        {
            arguments = File.ReadAllText("/proc/self/cmdline").TrimEnd('\0').Split('\0');
        }
        catch (IOException)
        {
            return;
        }
        _ = Signal(SigInt, SigDfl);
        var argv = new nint[arguments.Length + 1];
        for (int i = 0; i < arguments.Length; i++)
            argv[i] = Marshal.StringToCoTaskMemUTF8(arguments[i]);
        _ = ExecV("/proc/self/exe", argv);
        // Still here: exec failed. Keep the inherited ignore rather than die by the first SIGINT.
        _ = Signal(SigInt, SigIgn);
        foreach (nint arg in argv)
            Marshal.FreeCoTaskMem(arg);
    }

    public void Dispose()
    {
        foreach (var registration in _registrations)
            registration.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        _received.TrySetResult();
    }

    private static unsafe bool IsIgnored(int signal)
    {
        // struct sigaction starts with the handler on every Linux ABI; 256 bytes cover the whole structure.
        byte* action = stackalloc byte[256];
        return SigAction(signal, null, action) == 0 && *(nint*)action == SigIgn;
    }

    [LibraryImport("libc", EntryPoint = "signal")]
    private static partial nint Signal(int signal, nint handler);

    [LibraryImport("libc", EntryPoint = "sigaction")]
    private static unsafe partial int SigAction(int signal, byte* action, byte* oldAction);

    [LibraryImport("libc", EntryPoint = "execv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int ExecV(string path, nint[] argv);
}
