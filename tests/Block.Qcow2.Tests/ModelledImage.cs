using Block.Graph;
using Block.TestSupport;

namespace Block.Qcow2.Tests;

/// <summary>
/// A backend and the <see cref="ByteModel"/> of what it should hold, changed together: each operation goes to the
/// library and to the model.
/// </summary>
internal sealed class ModelledImage
{
    private BlockBackend _backend;
    private readonly int _discardGranularity;
    private readonly Func<long, int, byte[]>? _afterDiscard;

    /// <param name="backend">The image, open read-write.</param>
    /// <param name="initial">What it holds now.</param>
    /// <param name="discardGranularity">The cluster size: discard drops whole clusters only.</param>
    /// <param name="afterDiscard">What a discarded cluster reads as (version 2 shows the backing file); zeroes when null.</param>
    public ModelledImage(BlockBackend backend, byte[] initial, int discardGranularity, Func<long, int, byte[]>? afterDiscard = null)
    {
        _backend = backend;
        _discardGranularity = discardGranularity;
        _afterDiscard = afterDiscard;
        Model = new ByteModel(initial.Length);
        Model.Write(0, initial);
    }

    public ByteModel Model { get; }

    /// <summary>The image; replaced after a reopen.</summary>
    public BlockBackend Backend
    {
        get => _backend;
        set => _backend = value;
    }

    public byte[] Expected => Model.Bytes.ToArray();

    public async Task WriteAsync(long offset, int length, int seed, RequestFlags flags = RequestFlags.None)
    {
        var data = Patterns.Random(length, seed);
        await _backend.WriteAsync(offset, data, flags);
        Model.Write(offset, data);
    }

    public async Task WriteAsync(long offset, byte[] data, RequestFlags flags = RequestFlags.None)
    {
        await _backend.WriteAsync(offset, data, flags);
        Model.Write(offset, data);
    }

    public async Task ZeroAsync(long offset, long length, bool mayUnmap)
    {
        await _backend.WriteZeroesAsync(offset, length, mayUnmap ? RequestFlags.MayUnmap : RequestFlags.None);
        Model.Zero(offset, length);
    }

    public async Task DiscardAsync(long offset, long length)
    {
        await _backend.DiscardAsync(offset, length);
        int g = _discardGranularity;
        long start = (offset + g - 1) / g * g;
        long end = Math.Min(Model.Length, (offset + length + (offset + length == Model.Length ? g - 1 : 0)) / g * g);
        for (long c = start; c < end; c += g)
        {
            int n = (int)Math.Min(g, end - c);
            if (_afterDiscard is null)
                Model.Zero(c, n);
            else
                Model.Write(c, _afterDiscard(c, n));
        }
    }

    public async Task FlushAsync() => await _backend.FlushAsync();

    /// <summary>Asserts the library reads back exactly the model.</summary>
    public async Task AssertReadsBackAsync(string what) =>
        Qcow2Images.AssertSameBytes(Expected, await Qcow2Images.ReadAllAsync(_backend), what);

    /// <summary>Data that deflate and zstd shrink well: runs of 512 equal bytes.</summary>
    public static byte[] Compressible(int length, int seed)
    {
        var b = new byte[length];
        for (int i = 0; i < length; i++)
            b[i] = (byte)((i / 512 + seed) % 7 * 31);
        return b;
    }
}
