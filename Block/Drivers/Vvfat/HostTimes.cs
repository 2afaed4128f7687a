namespace Block.Drivers.Vvfat;

/// <summary>
/// A host file's times in FAT's form, in local time as QEMU's <c>localtime_r</c> gives them: the creation fields from
/// the status change time (<c>st_ctime</c>), the access date from <c>st_atime</c>, the modification fields from
/// <c>st_mtime</c>; two-second resolution, no hundredths.
/// </summary>
/// <remarks>Years outside 1980–2107 wrap in FAT's 7-bit year field, as in QEMU (1975 reads back as 2103).</remarks>
internal readonly record struct HostTimes(ushort ChangeTime, ushort ChangeDate, ushort AccessDate, ushort ModifyTime, ushort ModifyDate)
{
    /// <summary>Converts Unix times in seconds.</summary>
    public static HostTimes FromUnix(long accessSeconds, long modifySeconds, long changeSeconds)
    {
        var change = Local(changeSeconds);
        var modify = Local(modifySeconds);
        return new HostTimes(Time(change), Date(change), Date(Local(accessSeconds)), Time(modify), Date(modify));
    }

    private static DateTime Local(long seconds)
    {
        seconds = Math.Clamp(seconds, -62135596800L + 86400, 253402300799L - 86400);
        return TimeZoneInfo.ConvertTime(DateTimeOffset.FromUnixTimeSeconds(seconds), TimeZoneInfo.Local).DateTime;
    }

    private static ushort Time(DateTime t) => (ushort)((t.Hour << 11) | (t.Minute << 5) | (t.Second / 2));

    private static ushort Date(DateTime t) => (ushort)((((t.Year - 1980) << 9) | (t.Month << 5) | t.Day) & 0xffff);
}
