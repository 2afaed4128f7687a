using Block.Graph;

namespace Block.Jobs;

/// <summary>Options of a <see cref="BlockRebase"/>.</summary>
public sealed record BlockRebaseOptions
{
    /// <summary>
    /// Called after each chunk (at most <see cref="BlockRebase.ChunkBytes"/>) that the image does not hold itself has
    /// been compared and, where it differed, written, with the chunk's offset and length.
    /// </summary>
    public Action<long, long>? ChunkDone { get; init; }
}

/// <summary>
/// The copy of a safe rebase (<c>qemu-img rebase</c> without <c>-u</c>): wherever an image does not hold the data itself,
/// what its old backing chain shows and its new backing file does not is written into it, so that it reads the same
/// over the new backing file (or none) as over the old one. Recording the new backing file afterwards is
/// <see cref="Drivers.NodeDriver.ChangeBackingFileAsync"/>.
/// </summary>
/// <remarks>
/// <para>The image is walked in chunks of 2 MiB, cut short where the image's own allocation changes; chunks the image
/// holds are skipped. When the new backing file is an image of the old chain, only what the images between them hold
/// can differ, so only that is compared. The old and the new content are compared sector by sector (512 bytes) and
/// each run of differing sectors is written: as data, or as zeroes past the end of the old backing file (or without
/// one). Backing files shorter than the image read as zeroes past their end.</para>
/// <para>The image must be writable; the new backing file is only read.</para>
/// </remarks>
public sealed class BlockRebase
{
    /// <summary>The chunk the image is walked in (QEMU's 2 MiB I/O buffer).</summary>
    public const int ChunkBytes = 2 << 20;

    private const int SectorBytes = 512;

    private readonly BlockRebaseOptions _options;

    /// <summary>Creates the copy that rebases <paramref name="image"/> from its current backing chain onto <paramref name="newBacking"/>.</summary>
    /// <param name="image">The image to rebase, opened writable with its old backing chain.</param>
    /// <param name="newBacking">The new backing file, or null to make <paramref name="image"/> stand alone.</param>
    /// <param name="options">Progress reporting.</param>
    public BlockRebase(BlockNode image, BlockNode? newBacking, BlockRebaseOptions? options = null)
    {
        Image = image;
        NewBacking = newBacking;
        _options = options ?? new BlockRebaseOptions();
    }

    /// <summary>The image rebased.</summary>
    public BlockNode Image { get; }

    /// <summary>The new backing file, or null.</summary>
    public BlockNode? NewBacking { get; }

    /// <summary>Compares and writes.</summary>
    /// <exception cref="BlockException">A status query, a read or a write failed; the message says which, in qemu-img's words.</exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public async ValueTask RunAsync(CancellationToken cancellationToken = default)
    {
        var oldBacking = Image.Backing?.Node;
        var prefixBase = NewBacking != null && IsInChain(oldBacking, NewBacking) ? NewBacking : null;
        long size = Image.Length;
        long oldSize = oldBacking?.Length ?? 0;
        long newSize = NewBacking?.Length ?? 0;

        var pool = Image.Graph.Buffers;
        var oldBuffer = pool.Rent(ChunkBytes);
        var newBuffer = pool.Rent(ChunkBytes);
        try
        {
            long n;
            for (long offset = 0; offset < size; offset += n)
            {
                cancellationToken.ThrowIfCancellationRequested();
                n = Math.Min(ChunkBytes, size - offset);
                var status = await Query(Image.GetBlockStatusAsync(offset, n, wantZero: false)).ConfigureAwait(false);
                n = Math.Clamp(status.Bytes, 1, n);
                if (status.Has(BlockStatusFlags.Allocated))
                    continue;
                if (prefixBase != null)
                {
                    var (allocated, bytes) = await Query(oldBacking!.IsAllocatedAboveAsync(prefixBase, offset, n)).ConfigureAwait(false);
                    n = Math.Clamp(bytes, 1, n);
                    if (!allocated)
                        continue;
                }

                bool oldIsZero = offset >= oldSize;
                if (oldIsZero)
                {
                    oldBuffer.Span[..(int)n].Clear();
                }
                else
                {
                    n = Math.Min(n, oldSize - offset);
                    await Read(oldBacking!, offset, oldBuffer.Memory[..(int)n], "old").ConfigureAwait(false);
                }
                if (NewBacking is null || offset >= newSize)
                {
                    newBuffer.Span[..(int)n].Clear();
                }
                else
                {
                    n = Math.Min(n, newSize - offset);
                    await Read(NewBacking, offset, newBuffer.Memory[..(int)n], "new").ConfigureAwait(false);
                }

                for (int done = 0; done < n;)
                {
                    bool differ = CompareSectors(oldBuffer.Span[done..(int)n], newBuffer.Span[done..(int)n], out int run);
                    if (differ && oldIsZero)
                        await WriteZeroes(offset + done, run).ConfigureAwait(false);
                    else if (differ)
                        await Write(offset + done, oldBuffer.Memory.Slice(done, run)).ConfigureAwait(false);
                    done += run;
                }
                _options.ChunkDone?.Invoke(offset, n);
            }
        }
        finally
        {
            oldBuffer.Return(clear: true);
            newBuffer.Return(clear: true);
        }
    }

    private static bool IsInChain(BlockNode? chain, BlockNode node)
    {
        for (var n = chain; n != null; n = n.Backing?.Node)
        {
            if (ReferenceEquals(n, node))
                return true;
        }
        return false;
    }

    /// <summary>
    /// Whether the first sector of <paramref name="a"/> and <paramref name="b"/> differs, and in <paramref name="run"/>
    /// how many bytes from the start (whole sectors, or to the end) are alike in that respect.
    /// </summary>
    private static bool CompareSectors(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, out int run)
    {
        bool differ = !SectorsEqual(a, b, 0);
        run = Math.Min(SectorBytes, a.Length);
        while (run < a.Length && !SectorsEqual(a, b, run) == differ)
            run += Math.Min(SectorBytes, a.Length - run);
        return differ;
    }

    private static bool SectorsEqual(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, int start)
    {
        int length = Math.Min(SectorBytes, a.Length - start);
        return a.Slice(start, length).SequenceEqual(b.Slice(start, length));
    }

    private static async ValueTask<T> Query<T>(ValueTask<T> query)
    {
        try
        {
            return await query.ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            throw new BlockException(e.Errno, $"error while reading image metadata: {ErrnoText.Describe(e.Errno)}", e);
        }
    }

    private static async ValueTask Read(BlockNode node, long offset, Memory<byte> buffer, string which)
    {
        try
        {
            await node.ReadAsync(offset, buffer).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            throw new BlockException(e.Errno, $"error while reading from {which} backing file", e);
        }
    }

    private async ValueTask Write(long offset, Memory<byte> data)
    {
        try
        {
            await Image.WriteAsync(offset, data).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            throw WriteError(e);
        }
    }

    private async ValueTask WriteZeroes(long offset, int bytes)
    {
        try
        {
            await Image.WriteZeroesAsync(offset, bytes).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            throw WriteError(e);
        }
    }

    private static BlockException WriteError(BlockException e) =>
        new(e.Errno, $"Error while writing image: {ErrnoText.Describe(e.Errno)}", e);
}
