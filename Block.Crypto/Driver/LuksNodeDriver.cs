using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using Block.Crypto.Ciphers;
using Block.Crypto.Luks;
using Block.Crypto.Qapi;
using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Crypto.Driver;

/// <summary>
/// One open LUKS image: guest byte <c>o</c> lives at file byte <c>payload + o</c>, encrypted as part of IV sector
/// <c>o / 512</c>. Reads decrypt in the caller's buffers; writes encrypt into pooled bounce buffers.
/// </summary>
/// <remarks>
/// <para>Requests arrive whole 512-byte sectors (<see cref="Limits"/>); the request path pads and read-modify-writes
/// anything else. A read whose segments are whole sectors is read straight into the caller's memory and decrypted
/// there, so with a synchronous engine it completes synchronously and allocates nothing; a read with segments that
/// split a sector goes through a bounce buffer, cleared before it returns to the pool because it held plaintext.</para>
/// <para>Writes cannot encrypt in the caller's buffers (the caller still owns the plaintext), so they copy at most
/// 1 MiB at a time into a bounce buffer, encrypt it there and write it. The bounce buffer then holds only ciphertext
/// and goes back to the pool without clearing.</para>
/// </remarks>
internal sealed class LuksNodeDriver : NodeDriver
{
    private const int Sector = SectorCipher.SectorSize;
    private const int BounceBytes = 1 << 20;
    private readonly BlockNode _file;
    private readonly LuksVolume _volume;
    private readonly long _payload;
    private readonly ImageInfoSpecificLuks _info;

    public LuksNodeDriver(BlockNode node, BlockNode file, LuksVolume volume)
        : base(node)
    {
        _file = file;
        _volume = volume;
        _payload = volume.PayloadOffset;
        _info = new ImageInfoSpecificLuks(volume.Info);
    }

    public override BlockLimits Limits => new() { RequestAlignment = Sector, MemoryAlignment = _file.Limits.MemoryAlignment };

    public override RequestFlags SupportedWriteFlags => RequestFlags.Fua;

    public override long Length => Math.Max(0, _file.Length - _payload);

    public override bool IsEncrypted => true;

    public override bool HasZeroInit => false;

    public override ImageInfoSpecific? SpecificInfo => _info;

    /// <summary>
    /// The file's name, or with a <c>key-secret</c> QEMU's <c>json:{…}</c> form: the secret's id is an option the file
    /// name alone cannot carry.
    /// </summary>
    public override string Filename
    {
        get
        {
            if (((BlockdevOptionsLuks)Node.Options).KeySecret is not { } secret)
                return _file.Filename;
            string fileName = _file.Filename;
            JsonNode file = fileName.StartsWith("json:", StringComparison.Ordinal)
                ? JsonNode.Parse(fileName[5..])!
                : new JsonObject { ["driver"] = _file.DriverName, ["filename"] = fileName };
            return "json:" + QemuJson.Compact(new JsonObject { ["driver"] = "luks", ["file"] = file, ["key-secret"] = secret });
        }
    }

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        var cipher = _volume.Cipher;
        if (cipher is null)
            return ValueTask.FromException(Locked());
        if (!SectorCipher.IsSectorAligned(buffers))
            return ReadBouncedAsync(cipher, offset, buffers, flags);
        var read = _file.ReadAsync(_payload + offset, buffers, flags);
        if (!read.IsCompletedSuccessfully)
            return DecryptAfterAsync(read, cipher, offset, buffers);
        read.GetAwaiter().GetResult();
        cipher.Decrypt(buffers, (ulong)(offset / Sector));
        return default;
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        var cipher = _volume.Cipher;
        if (cipher is null)
            return ValueTask.FromException(Locked());
        return WriteEncryptedAsync(cipher, offset, buffers, flags);
    }

    public override ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact) =>
        _file.TruncateAsync(_payload + length, preallocation, exact);

    public override ValueTask DisposeAsync()
    {
        _volume.Dispose();
        return base.DisposeAsync();
    }

    private static BlockException Locked() =>
        new(Errno.EIO, "The LUKS image was opened without its key (metadata only); reading or writing data needs key-secret");

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask DecryptAfterAsync(ValueTask read, SectorCipher cipher, long offset, IoVector buffers)
    {
        await read.ConfigureAwait(false);
        cipher.Decrypt(buffers, (ulong)(offset / Sector));
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadBouncedAsync(SectorCipher cipher, long offset, IoVector buffers, RequestFlags flags)
    {
        var bounce = Node.Graph.Buffers.Rent(Math.Min(BounceBytes, buffers.Length));
        try
        {
            for (int done = 0; done < buffers.Length;)
            {
                int n = Math.Min(bounce.Capacity & ~(Sector - 1), buffers.Length - done);
                var memory = bounce.Memory[..n];
                await _file.ReadAsync(_payload + offset + done, memory, flags).ConfigureAwait(false);
                cipher.Decrypt(memory.Span, (ulong)((offset + done) / Sector));
                buffers.Slice(done, n).CopyFrom(memory.Span);
                done += n;
            }
        }
        finally
        {
            // The bounce buffer held plaintext.
            bounce.Return(clear: true);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteEncryptedAsync(SectorCipher cipher, long offset, IoVector buffers, RequestFlags flags)
    {
        var bounce = Node.Graph.Buffers.Rent(Math.Min(BounceBytes, buffers.Length));
        try
        {
            for (int done = 0; done < buffers.Length;)
            {
                int n = Math.Min(bounce.Capacity & ~(Sector - 1), buffers.Length - done);
                var memory = bounce.Memory[..n];
                buffers.Slice(done, n).CopyTo(memory.Span);
                cipher.Encrypt(memory.Span, (ulong)((offset + done) / Sector));
                await _file.WriteAsync(_payload + offset + done, memory, flags).ConfigureAwait(false);
                done += n;
            }
        }
        finally
        {
            // Encrypted in place before any await: only ciphertext is left in it.
            bounce.Return(clear: false);
        }
    }
}
