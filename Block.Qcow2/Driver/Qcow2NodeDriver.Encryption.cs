using System.Buffers;
using System.Runtime.CompilerServices;
using Block.Crypto.Ciphers;
using Block.Io;
using Block.Qcow2.Encryption;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <summary>The largest bounce buffer an encrypted write or an unaligned encrypted read uses at once.</summary>
    private const int CryptoBounceBytes = 1 << 20;

    private const int Sector = SectorCipher.SectorSize;

    /// <summary>
    /// Reads data-cluster bytes stored at <paramref name="host"/> for guest <paramref name="guestOffset"/>, decrypting them
    /// on an encrypted image. Whole-sector segments are decrypted in the caller's memory: with a synchronous engine
    /// this completes synchronously and allocates nothing.
    /// </summary>
    private ValueTask ReadDataAsync(long guestOffset, long host, IoVector buffers)
    {
        if (_encryption is null)
            return _data.ReadAsync(host, buffers);
        var cipher = _encryption.Cipher;
        if (cipher is null)
            return ValueTask.FromException(LockedError());
        ulong sector = _encryption.SectorOf(guestOffset, host);
        if (!SectorCipher.IsSectorAligned(buffers))
            return ReadBouncedAsync(cipher, sector, host, buffers);
        var read = _data.ReadAsync(host, buffers);
        if (!read.IsCompletedSuccessfully)
            return DecryptAfterAsync(read, cipher, sector, buffers);
        read.GetAwaiter().GetResult();
        cipher.Decrypt(buffers, sector);
        return default;
    }

    /// <summary>
    /// Writes data-cluster bytes to <paramref name="host"/> for guest <paramref name="guestOffset"/>, encrypted (into
    /// pooled bounce buffers; the caller's memory is not touched) on an encrypted image.
    /// </summary>
    private ValueTask WriteDataAsync(long guestOffset, long host, IoVector buffers)
    {
        if (_encryption is null)
            return _data.WriteAsync(host, buffers);
        var cipher = _encryption.Cipher;
        if (cipher is null)
            return ValueTask.FromException(LockedError());
        return WriteEncryptedAsync(cipher, _encryption.SectorOf(guestOffset, host), host, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask DecryptAfterAsync(ValueTask read, SectorCipher cipher, ulong sector, IoVector buffers)
    {
        await read.ConfigureAwait(false);
        cipher.Decrypt(buffers, sector);
    }

    /// <summary>A read whose segments split sectors: through a bounce buffer, cleared afterwards because it held plaintext.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadBouncedAsync(SectorCipher cipher, ulong sector, long host, IoVector buffers)
    {
        var bounce = Node.Graph.Buffers.Rent(Math.Min(CryptoBounceBytes, buffers.Length));
        try
        {
            int chunk = bounce.Capacity & ~(Sector - 1);
            for (int done = 0; done < buffers.Length;)
            {
                int n = Math.Min(chunk, buffers.Length - done);
                var memory = bounce.Memory[..n];
                await _data.ReadAsync(host + done, memory).ConfigureAwait(false);
                cipher.Decrypt(memory.Span, sector + (ulong)(done / Sector));
                buffers.Slice(done, n).CopyFrom(memory.Span);
                done += n;
            }
        }
        finally
        {
            bounce.Return(clear: true);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteEncryptedAsync(SectorCipher cipher, ulong sector, long host, IoVector buffers)
    {
        var bounce = Node.Graph.Buffers.Rent(Math.Min(CryptoBounceBytes, buffers.Length));
        try
        {
            int chunk = bounce.Capacity & ~(Sector - 1);
            for (int done = 0; done < buffers.Length;)
            {
                int n = Math.Min(chunk, buffers.Length - done);
                var memory = bounce.Memory[..n];
                buffers.Slice(done, n).CopyTo(memory.Span);
                cipher.Encrypt(memory.Span, sector + (ulong)(done / Sector));
                await _data.WriteAsync(host + done, memory).ConfigureAwait(false);
                done += n;
            }
        }
        finally
        {
            // Encrypted in place before any await: only ciphertext is left in it.
            bounce.Return(clear: false);
        }
    }

    /// <summary>VM state at an unaligned position of an encrypted image: whole sectors through a bounce buffer.</summary>
    private async ValueTask ReadVmStateBouncedAsync(long offset, IoVector buffers)
    {
        long start = offset & ~(long)(Sector - 1);
        int length = (int)(((offset + buffers.Length + Sector - 1) & ~(long)(Sector - 1)) - start);
        var bounce = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            await ReadSlowAsync(start, new IoVector(bounce.AsMemory(0, length))).ConfigureAwait(false);
            buffers.CopyFrom(bounce.AsSpan((int)(offset - start), buffers.Length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bounce, clearArray: true);
        }
    }

    /// <summary>VM state at an unaligned position of an encrypted image: read-modify-write of the whole sectors.</summary>
    private async ValueTask WriteVmStateBouncedAsync(long offset, IoVector buffers)
    {
        long start = offset & ~(long)(Sector - 1);
        int length = (int)(((offset + buffers.Length + Sector - 1) & ~(long)(Sector - 1)) - start);
        var bounce = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            await ReadSlowAsync(start, new IoVector(bounce.AsMemory(0, length))).ConfigureAwait(false);
            buffers.CopyTo(bounce.AsSpan((int)(offset - start), buffers.Length));
            await WriteSlowAsync(start, new IoVector(bounce.AsMemory(0, length))).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bounce, clearArray: true);
        }
    }

    private static bool IsSectorAligned(long offset, int length) => ((offset | (long)length) & (Sector - 1)) == 0;

    private static BlockException LockedError() =>
        new(Errno.EIO, "The encrypted qcow2 image was opened without its key; reading or writing data needs encrypt.key-secret (or block_passwd)");

    /// <summary>
    /// Creation only, on a new image: makes it encrypted with <paramref name="method"/>. For LUKS,
    /// <paramref name="luksArea"/> (the header and key material, created beforehand) goes into newly allocated clusters,
    /// zero-padded to whole clusters, and the full-disk-encryption extension points at it.
    /// </summary>
    /// <remarks>The clusters and their refcounts reach the disk before the header names them: a crash in between leaves
    /// a leak, not a header pointing at clusters that could be handed out again.</remarks>
    internal async ValueTask SetUpEncryptionAsync(Qcow2CryptMethod method, ReadOnlyMemory<byte> luksArea)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (method == Qcow2CryptMethod.Luks)
            {
                int cs = _layout.ClusterSize;
                int clusters = (luksArea.Length + cs - 1) / cs;
                long offset = await _refcounts.AllocateAsync(clusters).ConfigureAwait(false);
                await CheckOverlapAsync(offset, (long)clusters * cs, Qcow2OverlapFlags.None).ConfigureAwait(false);
                var area = new byte[(long)clusters * cs];
                luksArea.CopyTo(area);
                await _file.WriteAsync(offset, area.AsMemory()).ConfigureAwait(false);
                await FlushMetadataLockedAsync().ConfigureAwait(false);
                _header.CryptoHeader = ((ulong)offset, (ulong)luksArea.Length);
            }
            _header.CryptMethod = (uint)method;
            await WriteHeaderAsync().ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }
}
