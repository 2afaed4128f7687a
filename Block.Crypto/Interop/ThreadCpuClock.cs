using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Block.Crypto.Interop;

/// <summary>
/// The calling thread's CPU time (<c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>), which PBKDF2 calibration measures,
/// as QEMU and cryptsetup do; elapsed wall time where that clock is unavailable.
/// </summary>
/// <remarks>
/// Wall time counts the time a loaded machine keeps the thread off its core: with eight runnable threads on two cores,
/// a 10 ms calibration measured 309 iterations where an idle run measures about 100,000, and a LUKS key slot made then
/// would have been that much weaker. CPU time is what an attacker's core also spends.
/// </remarks>
internal static partial class ThreadCpuClock
{
    private const int ClockThreadCpuTimeId = 3;

    /// <summary>A reading in nanoseconds; only differences between readings on one thread mean anything.</summary>
    public static long NowNanoseconds()
    {
        if (OperatingSystem.IsLinux())
        {
            Span<long> timespec = stackalloc long[2];
            if (ClockGetTime(ClockThreadCpuTimeId, ref MemoryMarshal.GetReference(timespec)) == 0)
                return timespec[0] * 1_000_000_000 + timespec[1];
        }
        return (long)(Stopwatch.GetTimestamp() * (1e9 / Stopwatch.Frequency));
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, ref long timespec);
}
