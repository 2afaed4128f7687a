using Block.Drivers;
using Block.Qapi;

namespace Block.Formats.Qed;

internal sealed partial class QedNodeDriver
{
    /// <remarks>
    /// <para>What qemu-img finds (it prints no line per finding, only the counts), counted as it counts it: an L1 or L2 entry that names no table or cluster of the file
    /// (misaligned, inside the header, past the end) is a corruption, a cluster two entries name is a corruption, and a
    /// cluster of the file nothing names is a leak. Every data entry counts as allocated, and as fragmented when it
    /// does not follow the one before it in the file.</para>
    /// <para>Any repair mode repairs what QEMU repairs: invalid entries are cleared (their tables rewritten whole), and
    /// an image with nothing left to repair loses its need-check flag. Leaks stay, as in QEMU.</para>
    /// </remarks>
    public override async ValueTask<ImageCheck> CheckAsync(CheckRepair repair)
    {
        bool fix = repair != CheckRepair.None;
        if (fix && _readOnly)
            throw new BlockException(Errno.EROFS, "Cannot repair a read-only image");
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            long fileClusters = (_file.Length + _clusterSize - 1) >> _clusterShift;
            var used = new System.Collections.BitArray((int)Math.Min(fileClusters, int.MaxValue));
            long corruptions = 0, fixedCount = 0, allocated = 0, fragmented = 0;
            bool l1Changed = false;
            ulong last = 0;

            bool MarkUsed(ulong offset, long clusters)
            {
                long start = (long)(offset >> _clusterShift);
                bool fresh = true;
                for (long c = start; c < start + clusters && c < used.Length; c++)
                {
                    fresh &= !used[(int)c];
                    used[(int)c] = true;
                }
                return fresh;
            }

            MarkUsed(0, _header.HeaderSize);
            MarkUsed(_header.L1TableOffset, _header.TableSize);
            for (int i = 0; i < _l1.Length; i++)
            {
                ulong tableOffset = _l1[i];
                if (tableOffset == 0)
                    continue;
                if (!IsValidTableOffset(tableOffset))
                {
                    if (fix)
                    {
                        _l1[i] = 0;
                        _l2[i] = null;
                        l1Changed = true;
                        fixedCount++;
                    }
                    else
                    {
                        corruptions++;
                    }
                    continue;
                }
                if (!MarkUsed(tableOffset, _header.TableSize))
                {
                    corruptions++;
                    continue;
                }
                var table = (await GetL2LockedAsync(i).ConfigureAwait(false))!;
                bool tableChanged = false;
                for (int j = 0; j < table.Length; j++)
                {
                    ulong entry = table[j];
                    if (entry <= ZeroCluster)
                        continue;
                    allocated++;
                    if (last != 0 && entry != last + (ulong)_clusterSize)
                        fragmented++;
                    last = entry;
                    if (!IsValidClusterOffset(entry) || (ulong)_file.Length - entry < (ulong)_clusterSize)
                    {
                        if (fix)
                        {
                            Volatile.Write(ref table[j], 0);
                            tableChanged = true;
                            fixedCount++;
                        }
                        else
                        {
                            corruptions++;
                        }
                        continue;
                    }
                    if (!MarkUsed(entry, 1))
                        corruptions++;
                }
                if (tableChanged)
                    await WriteTableSectorsAsync(Drivers.Blkdebug.BlkdebugEvent.L2Update, (long)tableOffset, table, 0, table.Length).ConfigureAwait(false);
            }
            if (l1Changed)
                await WriteTableSectorsAsync(Drivers.Blkdebug.BlkdebugEvent.L1Update, (long)_header.L1TableOffset, _l1, 0, _l1.Length).ConfigureAwait(false);

            long leaks = 0;
            for (int c = 0; c < used.Length; c++)
            {
                if (!used[c])
                    leaks++;
            }
            if (fix && corruptions == 0 && (_header.Features & QedHeader.FeatureNeedCheck) != 0)
            {
                // Nothing left that a crash could have broken: the image is consistent, say so in the header.
                await _file.FlushAsync().ConfigureAwait(false);
                _header.Features &= ~QedHeader.FeatureNeedCheck;
                await WriteHeaderAsync().ConfigureAwait(false);
                await _file.FlushAsync().ConfigureAwait(false);
            }
            return new ImageCheck
            {
                Filename = Filename,
                Format = "qed",
                Corruptions = corruptions == 0 ? null : corruptions,
                CorruptionsFixed = fixedCount == 0 ? null : fixedCount,
                Leaks = leaks == 0 ? null : leaks,
                TotalClusters = (_imageSize + _clusterSize - 1) >> _clusterShift,
                AllocatedClusters = allocated,
                FragmentedClusters = fragmented,
            };
        }
        finally
        {
            _lock.Release();
        }
    }
}
