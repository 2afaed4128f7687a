using System.Numerics;
using Block.Drivers;
using Block.Qapi;
using Block.Qcow2.Format;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <inheritdoc />
    /// <remarks>
    /// <para>As QEMU does, in this order: every option is read and checked (encryption, compat, data_file, data_file_raw,
    /// refcount_bits), the data file settings are written; then a version upgrade, a refcount width change, the backing
    /// file check, lazy refcounts, the size, and last a version downgrade. A failure part way leaves the changes made
    /// before it, as in QEMU.</para>
    /// <para>Progress is reported per operation (version change, refcount width change), each taking an equal share
    /// of the whole as QEMU's helper projects it.</para>
    /// </remarks>
    public override async ValueTask AmendAsync(ImageAmendRequest request, CancellationToken cancellationToken)
    {
        foreach (var key in request.Options.Keys)
        {
            if (key.StartsWith("encrypt.", StringComparison.Ordinal))
                throw new BlockException(Errno.EINVAL, "Can't amend encryption options - encryption not present");
        }
        int oldVersion = (int)_header.Version;
        int newVersion = request.GetString("compat") switch
        {
            null => oldVersion,
            "0.10" or "v2" => 2,
            "1.1" or "v3" => 3,
            var other => throw new BlockException(Errno.EINVAL, $"Unknown compatibility level {other}"),
        };
        bool dataFileGiven = request.Has("data_file");
        if (dataFileGiven && !_hasDataFile)
            throw new BlockException(Errno.EINVAL, "data-file can only be set for images that use an external data file");
        bool? dataFileRaw = request.GetBool("data_file_raw");
        if (dataFileRaw == true && !IsDataFileRaw)
            throw new BlockException(Errno.EINVAL, "data-file-raw cannot be set on existing images");
        int refcountBits = _layout.RefcountBits;
        if (request.GetNumber("refcount_bits") is { } bits)
        {
            if (bits < 1 || bits > 64 || !BitOperations.IsPow2((ulong)bits))
                throw new BlockException(Errno.EINVAL, "Refcount width must be a power of two and may not exceed 64 bits");
            refcountBits = (int)bits;
        }
        bool? lazy = request.GetBool("lazy_refcounts");
        ulong size = request.GetSize("size") ?? 0;
        bool backingGiven = request.Has("backing_file") || request.Has("backing_fmt");

        var progress = new AmendProgress(request.Progress,
            (newVersion != oldVersion ? 1 : 0) + (refcountBits != _layout.RefcountBits ? 1 : 0));
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfCorrupt();
            await WaitForAllocationsLockedAsync().ConfigureAwait(false);
            if (dataFileGiven || dataFileRaw != null)
            {
                if (dataFileGiven)
                    _header.DataFile = request.GetString("data_file") is { Length: > 0 } name ? name : null;
                if (dataFileRaw == false)
                    _header.Autoclear &= ~AutoclearFeatures.DataFileRaw;
                await WriteHeaderAsync().ConfigureAwait(false);
            }

            if (newVersion > oldVersion)
                await UpgradeLockedAsync(progress.For(AmendOperation.ChangingVersion)).ConfigureAwait(false);
            if (refcountBits != _layout.RefcountBits)
            {
                if (newVersion < 3 && refcountBits != 16)
                    throw new BlockException(Errno.EINVAL, "Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)");
                await ChangeRefcountOrderLockedAsync(BitOperations.Log2((uint)refcountBits), progress.For(AmendOperation.ChangingRefcountOrder)).ConfigureAwait(false);
            }
            if (backingGiven && (request.GetString("backing_file") != _header.BackingFile || request.GetString("backing_fmt") != _header.BackingFormat))
                throw new BlockException(Errno.EINVAL, "Cannot amend the backing file\nYou can use 'qemu-img rebase' instead.");
            if (lazy is { } on && on != _lazyRefcounts)
                await SetLazyRefcountsLockedAsync(on, newVersion).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }

        if (size != 0)
            await Node.TruncateAsync(checked((long)size), PreallocMode.Off, exact: false).ConfigureAwait(false);

        if (newVersion < oldVersion)
        {
            await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await DowngradeLockedAsync(progress.For(AmendOperation.ChangingVersion)).ConfigureAwait(false);
            }
            finally
            {
                _lock.Release();
            }
        }
    }

    /// <summary>Waits (under the lock) until no allocating write is in flight.</summary>
    private async ValueTask WaitForAllocationsLockedAsync()
    {
        while (_inFlight.Count > 0)
        {
            var f = _inFlight[0];
            _lock.Release();
            try
            {
                await f.Done.Task.ConfigureAwait(false);
            }
            finally
            {
                await _lock.WaitAsync().ConfigureAwait(false);
            }
        }
    }
}
