using System.Diagnostics;
using Block.Accounting;
using Block.Graph;
using Block.Io;

namespace Block.Cli.Io;

/// <summary>
/// qemu-io's asynchronous commands (<c>aio_read</c>, <c>aio_write</c>, <c>aio_flush</c>) and blkdebug's breakpoint
/// commands (<c>break</c>, <c>wait_break</c>, <c>resume</c>, <c>remove_break</c>).
/// </summary>
/// <remarks>
/// An aio command only submits: it succeeds once the request is under way, and the request's lines (its statistics,
/// its error, a failed pattern check) come when the command loop next waits (<see cref="AsyncRequests"/>), as
/// qemu-io's do. Breakpoints are what make such runs repeatable: a request held at an event stays there until a later
/// command resumes it.
/// </remarks>
internal static partial class IoCommands
{
    private const string AioReadHelp = """

 asynchronously reads a range of bytes from the given offset

 Example:
 'aio_read -v 512 1k 1k ' - dumps 2 kilobytes read from 512 bytes into the file

 Reads a segment of the currently open file, optionally dumping it to the
 standard output stream (with -v option) for subsequent inspection.
 The read is performed asynchronously and the aio_flush command must be
 used to ensure all outstanding aio requests have been completed.
 Note that due to its asynchronous nature, this command will be
 considered successful once the request is submitted, independently
 of potential I/O errors or pattern mismatches.
 -C, -- report statistics in a machine parsable format
 -P, -- use a pattern to verify read data
 -i, -- treat request as invalid, for exercising stats
 -v, -- dump buffer to standard output
 -q, -- quiet mode, do not show I/O statistics


""";

    private const string AioWriteHelp = """

 asynchronously writes a range of bytes from the given offset source
 from multiple buffers

 Example:
 'aio_write 512 1k 1k' - writes 2 kilobytes at 512 bytes into the open file

 Writes into a segment of the currently open file, using a buffer
 filled with a set pattern (0xcdcdcdcd).
 The write is performed asynchronously and the aio_flush command must be
 used to ensure all outstanding aio requests have been completed.
 Note that due to its asynchronous nature, this command will be
 considered successful once the request is submitted, independently
 of potential I/O errors or pattern mismatches.
 -P, -- use different pattern to fill file
 -C, -- report statistics in a machine parsable format
 -f, -- use Force Unit Access semantics
 -i, -- treat request as invalid, for exercising stats
 -q, -- quiet mode, do not show I/O statistics
 -u, -- with -z, allow unmapping
 -z, -- write zeroes using blk_aio_pwrite_zeroes


""";

    private static Task<bool> AioReadAsync(IoSession s, string name, string[] args)
    {
        var (options, operands) = Options(s, name, "CP:iqv", args);
        bool machine = false, quiet = false, verbose = false, invalid = false;
        byte? pattern = null;
        foreach (var (code, arg) in options)
        {
            switch (code)
            {
                case "C": machine = true; break;
                case "q": quiet = true; break;
                case "v": verbose = true; break;
                case "i": invalid = true; break;
                case "P":
                    if (!TryPattern(s, arg!, out byte p))
                        return Task.FromResult(false);
                    pattern = p;
                    break;
            }
        }
        if (operands.Count < 2)
            throw new UsageException();
        if (Number(s, operands[0]) is not { } offset)
            return Task.FromResult(false);
        if (IoVectorFromLengths(s, operands, 0xcd) is not { } segments)
            return Task.FromResult(false);
        if (invalid)
        {
            s.Out.WriteLine("injecting invalid read request");
            s.Backend!.Stats.Invalid(BlockAcctType.Read);
            return Task.FromResult(true);
        }
        var vector = new IoVector(segments);
        var backend = s.Backend!;
        var request = new AsyncRequests.Request();
        s.Aio.Begin(request);
        var sw = Stopwatch.StartNew();
        _ = AsyncRequests.Start(request, () => CompleteAioAsync(s, request, backend.ReadAsync(offset, vector), () =>
        {
            sw.Stop();
            var data = vector.IsSingleSegment ? vector.FirstSegment : vector.ToArray();
            var lines = new StringWriter { NewLine = "\n" };
            if (pattern is { } expected && data.Span.IndexOfAnyExcept(expected) >= 0)
                lines.WriteLine($"Pattern verification failed at offset {offset}, {vector.Length} bytes");
            if (quiet)
                return lines.ToString();
            if (verbose)
                Dump(lines, data.Span, offset);
            Report(lines, "read", sw.Elapsed, offset, vector.Length, 1, machine);
            return lines.ToString();
        }, "readv"));
        return Task.FromResult(true);
    }

    private static Task<bool> AioWriteAsync(IoSession s, string name, string[] args)
    {
        var (options, operands) = Options(s, name, "CfiqP:uz", args);
        bool machine = false, quiet = false, invalid = false, fua = false, unmap = false, zero = false;
        byte fill = 0xcd;
        foreach (var (code, arg) in options)
        {
            switch (code)
            {
                case "C": machine = true; break;
                case "q": quiet = true; break;
                case "i": invalid = true; break;
                case "f": fua = true; break;
                case "u": unmap = true; break;
                case "z": zero = true; break;
                case "P":
                    if (!TryPattern(s, arg!, out fill))
                        return Task.FromResult(false);
                    break;
            }
        }
        if (operands.Count < 2)
            throw new UsageException();
        if (unmap && !zero)
        {
            s.Out.WriteLine("-u requires -z to be specified");
            return Task.FromResult(false);
        }
        if (zero && operands.Count != 2)
        {
            s.Out.WriteLine("-z supports only a single length parameter");
            return Task.FromResult(false);
        }
        if (Number(s, operands[0]) is not { } offset)
            return Task.FromResult(false);
        long count;
        Memory<byte>[]? segments = null;
        if (zero)
        {
            if (Number(s, operands[1]) is not { } zeroCount)
                return Task.FromResult(false);
            count = zeroCount;
        }
        else
        {
            if (IoVectorFromLengths(s, operands, fill) is not { } built)
                return Task.FromResult(false);
            segments = built;
            count = segments.Sum(m => (long)m.Length);
        }
        if (invalid)
        {
            s.Out.WriteLine("injecting invalid write request");
            s.Backend!.Stats.Invalid(BlockAcctType.Write);
            return Task.FromResult(true);
        }
        var backend = s.Backend!;
        var flags = (fua ? RequestFlags.Fua : 0) | (zero && unmap ? RequestFlags.MayUnmap : 0);
        var request = new AsyncRequests.Request();
        s.Aio.Begin(request);
        var sw = Stopwatch.StartNew();
        _ = AsyncRequests.Start(request, () => CompleteAioAsync(s, request,
            zero ? backend.WriteZeroesAsync(offset, count, flags) : backend.WriteAsync(offset, new IoVector(segments!), flags), () =>
        {
            sw.Stop();
            if (quiet)
                return string.Empty;
            var lines = new StringWriter { NewLine = "\n" };
            Report(lines, "wrote", sw.Elapsed, offset, count, 1, machine);
            return lines.ToString();
        }, "aio_write"));
        return Task.FromResult(true);
    }

    /// <summary>Waits for an aio request and queues its lines: <paramref name="done"/>'s, or <c>{op} failed: error</c>.</summary>
    private static async Task CompleteAioAsync(IoSession s, AsyncRequests.Request request, ValueTask io, Func<string> done, string op)
    {
        string lines;
        try
        {
            await io.ConfigureAwait(false);
            lines = done();
        }
        catch (BlockException e)
        {
            lines = $"{op} failed: {Errno(e)}\n";
        }
        s.Aio.End(request, lines);
    }

    /// <summary>
    /// Runs a synchronous command's request, printing other requests' lines while it runs; false after printing
    /// <c>{op} failed: Resource deadlock avoided</c> if a breakpoint holds it (qemu-io would wait forever).
    /// </summary>
    private static async Task<bool> RunSyncAsync(IoSession s, string op, Func<ValueTask> start)
    {
        var request = new AsyncRequests.Request();
        s.Aio.Begin(request);
        var task = AsyncRequests.Start(request, () => start().AsTask());
        if (await s.Aio.WaitAsync(request, task))
            return true;
        s.Out.WriteLine($"{op} failed: {ErrnoText.Describe(Block.Errno.EDEADLK)}");
        return false;
    }

    /// <summary>qemu-io's <c>create_iovec</c>: buffers for <c>len [len..]</c> (operands from index 1).</summary>
    private static Memory<byte>[]? IoVectorFromLengths(IoSession s, List<string> operands, byte fill)
    {
        var segments = new List<Memory<byte>>();
        long total = 0;
        foreach (string text in operands.Skip(1))
        {
            if (Number(s, text) is not { } len)
                return null;
            if (len > MaxRequest)
            {
                s.Out.WriteLine($"Argument '{text}' exceeds maximum size {MaxRequest}");
                return null;
            }
            if (total > MaxRequest - len)
            {
                s.Out.WriteLine($"The total number of bytes exceed the maximum size {MaxRequest}");
                return null;
            }
            total += len;
            segments.Add(s.Allocate((int)len, fill));
        }
        return [.. segments];
    }

    private static async Task<bool> AioFlushAsync(IoSession s, string name, string[] args)
    {
        if (await s.Aio.DrainAsync())
            return true;
        s.Out.WriteLine($"aio_flush failed: {ErrnoText.Describe(Block.Errno.EDEADLK)}");
        return false;
    }

    private static Task<bool> BreakAsync(IoSession s, string name, string[] args)
    {
        try
        {
            s.Backend!.Root!.AddDebugBreakpoint(args[0], args[1], s.Aio.Suspended);
            return Task.FromResult(true);
        }
        catch (BlockException e)
        {
            s.Out.WriteLine($"Could not set breakpoint: {Errno(e)}");
            return Task.FromResult(false);
        }
    }

    private static Task<bool> RemoveBreakAsync(IoSession s, string name, string[] args)
    {
        string tag = args[0];
        var root = s.Backend!.Root!;
        int held = root.IsDebugRequestSuspended(tag) ? s.Aio.SuspendedTags().Count(t => t == tag) : 0;
        BlockException? error = null;
        AsyncRequests.RunInline(() =>
        {
            // As blkdebug: each held request is announced as it is resumed.
            for (int i = 0; i < held; i++)
                s.Out.WriteLine($"blkdebug: Resuming request '{tag}'");
            s.Aio.Resumed(tag, all: true);
            try
            {
                root.RemoveDebugBreakpoint(tag);
            }
            catch (BlockException e)
            {
                error = e;
            }
        });
        if (error is null)
            return Task.FromResult(true);
        s.Out.WriteLine($"Could not remove breakpoint {tag}: {Errno(error)}");
        return Task.FromResult(false);
    }

    private static Task<bool> ResumeAsync(IoSession s, string name, string[] args)
    {
        string tag = args[0];
        var root = s.Backend!.Root!;
        BlockException? error = null;
        AsyncRequests.RunInline(() =>
        {
            if (root.IsDebugRequestSuspended(tag))
            {
                s.Out.WriteLine($"blkdebug: Resuming request '{tag}'");
                s.Aio.Resumed(tag, all: false);
            }
            try
            {
                root.ResumeDebugRequest(tag);
            }
            catch (BlockException e)
            {
                error = e;
            }
        });
        if (error is null)
            return Task.FromResult(true);
        s.Out.WriteLine($"Could not resume request: {Errno(error)}");
        return Task.FromResult(false);
    }

    private static async Task<bool> WaitBreakAsync(IoSession s, string name, string[] args)
    {
        string tag = args[0];
        var root = s.Backend!.Root!;
        if (await s.Aio.WaitForSuspensionAsync(tag, () => root.IsDebugRequestSuspended(tag)))
            return true;
        s.Out.WriteLine($"wait_break failed: {ErrnoText.Describe(Block.Errno.EDEADLK)}");
        return false;
    }
}
