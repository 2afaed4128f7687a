using System.Globalization;
using Block.Drivers;
using Block.Qapi;

namespace Block.Formats.Parallels;

internal sealed partial class ParallelsNodeDriver
{
    public override ValueTask<ImageCheck> CheckAsync(CheckRepair repair) => CheckAsync(repair, null);

    /// <remarks>
    /// <para>What qemu-img 7.2 finds, counted and worded as it does: the in-use flag of an image not closed cleanly (a
    /// corruption), BAT entries whose cluster starts past the end of the file (corruptions), and the file's bytes past
    /// the last cluster (leaks, in clusters). Allocated and fragmented clusters count every other entry.</para>
    /// <para><c>-r all</c> repairs the flag (the close clears it) and clears the entries past the end; <c>-r leaks</c>
    /// and <c>-r all</c> truncate the leaked space, as QEMU does, to the end of the last cluster. QEMU also truncates
    /// inside the BAT of an image with no cluster (the data area then starts past the end of the first cluster); the
    /// close grows the file back to the data area either way, and here writes the BAT back too.</para>
    /// </remarks>
    public override async ValueTask<ImageCheck> CheckAsync(CheckRepair repair, TextWriter? messages)
    {
        bool fixErrors = repair == CheckRepair.All, fixLeaks = repair != CheckRepair.None;
        if (fixLeaks && _readOnly)
            throw new BlockException(Errno.EROFS, "Cannot repair a read-only image");
        long size = _file.Length;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            long corruptions = 0, corruptionsFixed = 0, allocated = 0, fragmented = 0, leaks = 0, leaksFixed = 0;
            if (_unclean)
            {
                messages?.WriteLine($"{(fixErrors ? "Repairing" : "ERROR")} image was not closed correctly");
                corruptions++;
                if (fixErrors)
                {
                    // The close clears the flag in the file.
                    corruptionsFixed++;
                    _unclean = false;
                }
            }

            bool batChanged = false;
            long highest = 0, previous = 0;
            for (uint i = 0; i < _batSize; i++)
            {
                long host = _bat[i] * _entryUnit;
                if (host == 0)
                {
                    previous = 0;
                    continue;
                }
                if (host > size)
                {
                    messages?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{(fixErrors ? "Repairing" : "ERROR")} cluster {i} is outside image"));
                    corruptions++;
                    if (fixErrors)
                    {
                        Volatile.Write(ref _bat[i], 0);
                        batChanged = true;
                        corruptionsFixed++;
                        previous = 0;
                        continue;
                    }
                }
                allocated++;
                highest = Math.Max(highest, host);
                if (previous != 0 && previous + _clusterSize != host)
                    fragmented++;
                previous = host;
            }
            if (batChanged)
            {
                await WriteBatAsync(0, _batSize).ConfigureAwait(false);
                await _file.FlushAsync().ConfigureAwait(false);
            }

            long imageEnd = highest + _clusterSize;
            if (size > imageEnd)
            {
                long count = (size - imageEnd + _clusterSize - 1) / _clusterSize;
                messages?.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{(fixLeaks ? "Repairing" : "ERROR")} space leaked at the end of the image {size - imageEnd}"));
                leaks += count;
                if (fixLeaks)
                {
                    await _file.TruncateAsync(imageEnd, PreallocMode.Off, exact: true).ConfigureAwait(false);
                    _batCut |= imageEnd < _header.BatEnd;
                    leaksFixed += count;
                }
            }
            return new ImageCheck
            {
                Filename = Filename,
                Format = "parallels",
                Corruptions = corruptions,
                CorruptionsFixed = corruptionsFixed,
                Leaks = leaks,
                LeaksFixed = leaksFixed,
                TotalClusters = _batSize,
                AllocatedClusters = allocated,
                FragmentedClusters = fragmented,
                CompressedClusters = 0,
                ImageEndOffset = imageEnd,
            };
        }
        finally
        {
            _lock.Release();
        }
    }
}
