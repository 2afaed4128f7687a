using Block.Graph;
using Block.Qcow2.Format;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    private int _metadataPreallocation; // 0 unknown, 1 no, 2 yes

    /// <inheritdoc />
    /// <remarks>Data clusters report their host offset in the data file; preallocated zero clusters and preallocated
    /// but unallocated subclusters too (as QEMU's map shows them). On images created with <c>preallocation=metadata</c> the file below is asked whether data clusters
    /// are holes, so such images map as zeroes as QEMU shows them. Encrypted images report no host offsets: their host
    /// bytes are not the guest's.</remarks>
    public override async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        var run = await MapAsync(offset, length).ConfigureAwait(false);
        if (_encryption != null)
        {
            return run.Type switch
            {
                SubclusterType.Normal or SubclusterType.Compressed => new BlockStatus(BlockStatusFlags.Data, run.Bytes),
                SubclusterType.ZeroAlloc or SubclusterType.ZeroPlain => new BlockStatus(BlockStatusFlags.Zero, run.Bytes),
                _ => new BlockStatus(BlockStatusFlags.None, run.Bytes),
            };
        }
        switch (run.Type)
        {
            case SubclusterType.Normal:
                var flags = BlockStatusFlags.Data | BlockStatusFlags.OffsetValid;
                if (await IsMetadataPreallocatedAsync().ConfigureAwait(false))
                    flags |= BlockStatusFlags.Recurse;
                return new BlockStatus(flags, run.Bytes, run.Host, _data);
            case SubclusterType.ZeroAlloc:
                return new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.OffsetValid, run.Bytes, run.Host, _data);
            case SubclusterType.ZeroPlain:
                return new BlockStatus(BlockStatusFlags.Zero, run.Bytes);
            case SubclusterType.UnallocatedAlloc:
                return new BlockStatus(BlockStatusFlags.OffsetValid, run.Bytes, run.Host, _data);
            case SubclusterType.Compressed:
                return new BlockStatus(BlockStatusFlags.Data, run.Bytes);
            default:
                return new BlockStatus(BlockStatusFlags.None, run.Bytes);
        }
    }

    /// <summary>
    /// QEMU's guess whether the image was preallocated with metadata only: many more clusters are in use than the file
    /// really occupies on the host.
    /// </summary>
    private async ValueTask<bool> IsMetadataPreallocatedAsync()
    {
        if (_metadataPreallocation != 0)
            return _metadataPreallocation == 2;
        bool result = false;
        if (_file.AllocatedSize is long real && real >= 0)
        {
            long realClusters = real / _layout.ClusterSize;
            long threshold = Math.Max(realClusters * 10 / 9, realClusters + 2);
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                long used = await _refcounts.CountUsedAsync(_layout.AlignUp(_file.Length) >> _layout.ClusterBits, threshold + 1).ConfigureAwait(false);
                result = used > threshold;
            }
            finally
            {
                _lock.Release();
            }
        }
        _metadataPreallocation = result ? 2 : 1;
        return result;
    }
}
