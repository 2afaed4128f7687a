using System.Diagnostics;
using System.Globalization;
using System.Text;
using Block.Cli.Common;
using Block.Cli.Img;
using Block.Graph;
using Block.Io;
using Block.Options;
using Block.Qapi;

namespace Block.Cli.Io;

/// <summary>The commands of <c>blk io</c>, with qemu-io's arguments, output lines and error texts.</summary>
internal static partial class IoCommands
{
    /// <summary>The largest request qemu-io accepts (QEMU's <c>BDRV_REQUEST_MAX_BYTES</c>).</summary>
    private const long MaxRequest = 2147483136;

    private const string ReadHelp = """

 reads a range of bytes from the given offset

 Example:
 'read -v 512 1k' - dumps 1 kilobyte read from 512 bytes into the file

 Reads a segment of the currently open file, optionally dumping it to the
 standard output stream (with -v option) for subsequent inspection.
 -b, -- read from the VM state rather than the virtual disk
 -C, -- report statistics in a machine parsable format
 -l, -- length for pattern verification (only with -P)
 -p, -- ignored for backwards compatibility
 -P, -- use a pattern to verify read data
 -q, -- quiet mode, do not show I/O statistics
 -s, -- start offset for pattern verification (only with -P)
 -v, -- dump buffer to standard output


""";

    private const string WriteHelp = """

 writes a range of bytes from the given offset

 Example:
 'write 512 1k' - writes 1 kilobyte at 512 bytes into the open file

 Writes into a segment of the currently open file, using a buffer
 filled with a set pattern (0xcdcdcdcd).
 -b, -- write to the VM state rather than the virtual disk
 -c, -- write compressed data with blk_write_compressed
 -f, -- use Force Unit Access semantics
 -n, -- with -z, don't allow slow fallback
 -p, -- ignored for backwards compatibility
 -P, -- use different pattern to fill file
 -s, -- use a pattern file to fill the write buffer
 -C, -- report statistics in a machine parsable format
 -q, -- quiet mode, do not show I/O statistics
 -u, -- with -z, allow unmapping
 -z, -- write zeroes using blk_co_pwrite_zeroes


""";

    private const string ReadvHelp = """

 reads a range of bytes from the given offset into multiple buffers

 Example:
 'readv -v 512 1k 1k ' - dumps 2 kilobytes read from 512 bytes into the file

 Reads a segment of the currently open file, optionally dumping it to the
 standard output stream (with -v option) for subsequent inspection.
 Uses multiple iovec buffers if more than one byte range is specified.
 -C, -- report statistics in a machine parsable format
 -P, -- use a pattern to verify read data
 -v, -- dump buffer to standard output
 -q, -- quiet mode, do not show I/O statistics


""";

    private const string WritevHelp = """

 writes a range of bytes from the given offset source from multiple buffers

 Example:
 'writev 512 1k 1k' - writes 2 kilobytes at 512 bytes into the open file

 Writes into a segment of the currently open file, using a buffer
 filled with a set pattern (0xcdcdcdcd).
 -P, -- use different pattern to fill file
 -C, -- report statistics in a machine parsable format
 -f, -- use Force Unit Access semantics
 -q, -- quiet mode, do not show I/O statistics


""";

    private const string DiscardHelp = """

 discards a range of bytes from the given offset

 Example:
 'discard 512 1k' - discards 1 kilobyte from 512 bytes into the file

 Discards a segment of the currently open file.
 -C, -- report statistics in a machine parsable format
 -q, -- quiet mode, do not show I/O statistics


""";

    private const string OpenHelp = """

 opens a new file in the requested mode

 Example:
 'open -n -o driver=raw /tmp/data' - opens raw data file read-write, uncached

 Opens a file for subsequent use by all of the other qemu-io commands.
 -r, -- open file read-only
 -s, -- use snapshot file
 -C, -- use copy-on-read
 -n, -- disable host cache, short for -t none
 -U, -- force shared permissions
 -k, -- use kernel AIO implementation (Linux only, prefer use of -i)
 -i, -- use AIO mode (threads, inline, native or io_uring)
 -t, -- use the given cache mode for the image
 -d, -- use the given discard mode for the image
 -o, -- options to be given to the block driver

""";

    private static readonly IoCommand[] s_commands =
    [
        new("aio_flush", null, "", "completes all outstanding aio requests", 0, 0, true, AioFlushAsync),
        new("aio_read", null, "[-Ciqv] [-P pattern] off len [len..]", "asynchronously reads a number of bytes", 2, -1, true, AioReadAsync, AioReadHelp),
        new("aio_write", null, "[-Cfiquz] [-P pattern] off len [len..]", "asynchronously writes a number of bytes", 2, -1, true, AioWriteAsync, AioWriteHelp),
        new("alloc", "a", "offset [count]", "checks if offset is allocated in the file", 1, 2, true, AllocAsync),
        new("break", null, "event tag", "sets a breakpoint on event and tags the stopped request as tag", 2, 2, true, BreakAsync),
        new("close", "c", "", "close the current open file", 0, 0, true, CloseAsync),
        new("discard", "d", "[-Cq] off len", "discards a number of bytes at a specified offset", 2, -1, true, DiscardAsync, DiscardHelp),
        new("flush", "f", "", "flush all in-core file state to disk", 0, 0, true, FlushAsync),
        new("help", "?", "[command]", "help for one or all commands", 0, 1, false, HelpAsync),
        new("info", "i", "", "prints information about the current file", 0, 0, true, InfoAsync),
        new("length", "l", "", "gets the length of the current file", 0, 0, true, LengthAsync),
        new("map", null, "", "prints the allocated areas of a file", 0, 0, true, MapAsync),
        new("open", "o", "[-rsCnkU] [-t cache] [-d discard] [-o options] [path]", "open the file specified by path", 1, -1, false, OpenAsync, OpenHelp),
        new("quit", "q", "", "exit the program", 0, 0, false, (_, _, _) => Task.FromResult(true)),
        new("read", "r", "[-abCqv] [-P pattern [-s off] [-l len]] off len", "reads a number of bytes at a specified offset", 2, -1, true, ReadAsync, ReadHelp),
        new("remove_break", null, "tag", "remove a breakpoint by tag", 1, 1, true, RemoveBreakAsync),
        new("resume", null, "tag", "resumes the request tagged as tag", 1, 1, true, ResumeAsync),
        new("readv", null, "[-Cqv] [-P pattern] off len [len..]", "reads a number of bytes at a specified offset", 2, -1, true, ReadvAsync, ReadvHelp),
        new("sleep", null, "", "waits for the given value in milliseconds", 1, 1, false, SleepAsync),
        new("truncate", "t", "[-m prealloc_mode] off", "truncates the current file at the given offset", 1, 3, true, TruncateAsync),
        new("wait_break", null, "tag", "waits for the suspension of a request", 1, 1, true, WaitBreakAsync),
        new("write", "w", "[-bcCfnquz] [-P pattern | -s source_file] off len", "writes a number of bytes at a specified offset", 2, -1, true, WriteAsync, WriteHelp),
        new("writev", null, "[-Cfq] [-P pattern] off len [len..]", "writes a number of bytes at a specified offset", 2, -1, true, WritevAsync, WritevHelp),
    ];

    private static readonly HashSet<string> s_writers = ["write", "writev", "aio_write", "discard", "truncate"];

    /// <summary>Runs one command line; returns whether it succeeded and whether it was <c>quit</c>.</summary>
    public static async Task<(bool Ok, bool Quit)> ExecuteAsync(IoSession s, string line)
    {
        var tokens = line.Split([' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries);
        if (tokens.Length == 0)
            return (true, false);
        string name = tokens[0];
        var command = Find(name);
        if (command is null)
        {
            s.Cli.Err.WriteLine($"command \"{name}\" not found");
            return (false, false);
        }
        if (command.NeedsFile && s.Backend is null)
        {
            s.Cli.Err.WriteLine("no file open, try 'help open'");
            return (false, false);
        }
        if (s_writers.Contains(command.Name) && s.Backend is { CanWrite: false })
        {
            s.Cli.Error("Block node is read-only");
            return (false, false);
        }
        int argc = tokens.Length - 1;
        if (argc < command.Min || (command.Max >= 0 && argc > command.Max))
        {
            string expected = command.Max < 0 ? $"at least {command.Min}" : command.Min == command.Max ? $"{command.Min}" : $"between {command.Min} and {command.Max}";
            s.Cli.Err.WriteLine($"bad argument count {argc} to {name}, expected {expected} arguments");
            return (false, false);
        }
        if (command.Name == "quit")
            return (true, true);
        try
        {
            return (await command.Handler(s, name, tokens[1..]), false);
        }
        catch (UsageException)
        {
            s.Out.WriteLine(command.Usage(name));
            return (false, false);
        }
    }

    private static IoCommand? Find(string name) => s_commands.FirstOrDefault(c => c.Name == name || c.Alias == name);

    private sealed class UsageException : Exception;

    /// <summary>Parses command options with getopt; an unknown option prints <c>cmd: invalid option -- 'x'</c> and the usage line.</summary>
    private static (List<(string Code, string? Argument)> Options, List<string> Operands) Options(IoSession s, string name, string spec, string[] args)
    {
        try
        {
            return new GetOpt(spec).Parse(args);
        }
        catch (GetOptException e)
        {
            s.Cli.Err.WriteLine($"{name}: {e.GlibcMessage}");
            throw new UsageException();
        }
    }

    /// <summary>qemu-io's <c>cvtnum</c>: a size with suffix; prints the parsing error and returns null when bad.</summary>
    private static long? Number(IoSession s, string text)
    {
        if (!SizeParser.TryParse(text, out ulong v, out bool hexSuffix))
        {
            s.Out.WriteLine($"Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- {text}");
            return null;
        }
        if (v > long.MaxValue)
        {
            s.Out.WriteLine($"Parsing error: argument too large -- {text}");
            return null;
        }
        if (hexSuffix)
            s.Cli.Warning($"Using a multiplier suffix on hex numbers is deprecated: {text}");
        return (long)v;
    }

    private static bool TryPattern(IoSession s, string text, out byte pattern)
    {
        pattern = 0;
        if (SizeParser.TryParseInt64(text, out long v) && v >= 0 && v <= 255)
        {
            pattern = (byte)v;
            return true;
        }
        s.Out.WriteLine($"{text} is not a valid pattern byte");
        return false;
    }

    private static void Report(IoSession s, string op, TimeSpan elapsed, long offset, long bytes, int count, bool machine) =>
        Report(s.Out, op, elapsed, offset, bytes, count, machine);

    private static void Report(TextWriter output, string op, TimeSpan elapsed, long offset, long bytes, int count, bool machine)
    {
        double seconds = Math.Max(elapsed.TotalSeconds, 1e-7);
        if (machine)
        {
            output.WriteLine($"{bytes},{count},{QemuText.TimeStr(elapsed, true)},{CFormat.Fixed(bytes / seconds, 3)},{CFormat.Fixed(count / seconds, 3)}");
            return;
        }
        output.WriteLine($"{op} {bytes}/{bytes} bytes at offset {offset}");
        output.WriteLine($"{QemuText.CvtStr(bytes)}, {count} ops; {QemuText.TimeStr(elapsed, false)} ({QemuText.CvtStr(bytes / seconds)}/sec and {CFormat.Fixed(count / seconds, 4)} ops/sec)");
    }

    private static void Dump(TextWriter output, ReadOnlySpan<byte> data, long offset)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < data.Length; i += 16)
        {
            sb.Append((offset + i).ToString("x8", CultureInfo.InvariantCulture)).Append(":  ");
            int n = Math.Min(16, data.Length - i);
            for (int j = 0; j < n; j++)
                sb.Append(data[i + j].ToString("x2", CultureInfo.InvariantCulture)).Append(' ');
            sb.Append(' ');
            for (int j = 0; j < n; j++)
            {
                char c = (char)data[i + j];
                sb.Append(char.IsAsciiLetterOrDigit(c) ? c : '.');
            }
            sb.Append('\n');
        }
        output.Write(sb.ToString());
    }

    private static string Errno(BlockException e) => ErrnoText.Describe(e.Errno);

    /// <summary>The flags read, readv, write and writev share, and the ones each adds.</summary>
    private sealed class IoFlags
    {
        public bool Machine;
        public bool Quiet;
        public bool Verbose;
        public bool VmState;
        public bool Zero;
        public bool Unmap;
        public bool NoFallback;
        public bool Fua;
        public bool Compressed;
        public byte? Pattern;
        public string? PatternOffset;
        public string? PatternCount;
        public string? SourceFile;
        public int Sources;

        /// <summary>Applies one option; false (after printing the reason) for a bad pattern.</summary>
        public bool Apply(IoSession s, string code, string? arg)
        {
            switch (code)
            {
                case "C": Machine = true; break;
                case "q": Quiet = true; break;
                case "v": Verbose = true; break;
                case "b": VmState = true; break;
                case "z": Zero = true; Sources++; break;
                case "u": Unmap = true; break;
                case "n": NoFallback = true; break;
                case "f": Fua = true; break;
                case "c": Compressed = true; break;
                case "l": PatternCount = arg; break;
                case "s" when IsWrite: SourceFile = arg; Sources++; break;
                case "s": PatternOffset = arg; break;
                case "P":
                    Sources++;
                    if (!TryPattern(s, arg!, out byte p))
                        return false;
                    Pattern = p;
                    break;
            }
            return true;
        }

        public bool IsWrite { get; init; }
    }

    private static (IoFlags? Flags, List<string> Operands) ParseIo(IoSession s, string name, string spec, string[] args, bool write)
    {
        var (options, operands) = Options(s, name, spec, args);
        var flags = new IoFlags { IsWrite = write };
        foreach (var (code, arg) in options)
        {
            if (!flags.Apply(s, code, arg))
                return (null, operands);
        }
        return (flags, operands);
    }

    /// <summary>Parses <c>len [len..]</c> into buffers filled with <paramref name="fill"/>; null after printing the reason.</summary>
    private static Memory<byte>[]? Segments(IoSession s, IEnumerable<string> lengths, byte fill, out long total)
    {
        var segments = new List<Memory<byte>>();
        total = 0;
        foreach (var text in lengths)
        {
            if (Number(s, text) is not { } len)
                return null;
            total += len;
            if (total > MaxRequest)
            {
                s.Out.WriteLine($"length cannot exceed {MaxRequest}, given {text}");
                return null;
            }
            segments.Add(s.Allocate((int)len, fill));
        }
        return [.. segments];
    }

    private static Task<bool> ReadAsync(IoSession s, string name, string[] args) => ReadCommonAsync(s, name, "abCP:ql:s:vp", args, vectored: false);

    private static Task<bool> ReadvAsync(IoSession s, string name, string[] args) => ReadCommonAsync(s, name, "CP:qv", args, vectored: true);

    private static async Task<bool> ReadCommonAsync(IoSession s, string name, string spec, string[] args, bool vectored)
    {
        var (flags, operands) = ParseIo(s, name, spec, args, write: false);
        if (flags is null)
            return false;
        bool verifyRange = flags.PatternOffset != null || flags.PatternCount != null;
        if ((vectored ? operands.Count < 2 : operands.Count != 2) || (verifyRange && flags.Pattern is null))
            throw new UsageException();
        if (Number(s, operands[0]) is not { } offset)
            return false;
        if (!vectored && Number(s, operands[1]) is { } single && single > MaxRequest)
        {
            s.Out.WriteLine($"length cannot exceed {MaxRequest}, given {operands[1]}");
            return false;
        }
        if (Segments(s, operands.Skip(1), 0xcd, out long count) is not { } segments)
            return false;
        long patternOffset = 0, patternCount = count;
        if (flags.PatternOffset != null)
        {
            if (Number(s, flags.PatternOffset) is not { } po)
                return false;
            patternOffset = po;
        }
        if (flags.PatternCount != null)
        {
            if (Number(s, flags.PatternCount) is not { } pc)
                return false;
            patternCount = pc;
        }
        if (patternOffset + patternCount > count)
        {
            s.Out.WriteLine("pattern verification range exceeds end of read data");
            return false;
        }
        var vector = new IoVector(segments);
        var sw = Stopwatch.StartNew();
        try
        {
            var backend = s.Backend!;
            if (!await RunSyncAsync(s, vectored ? "readv" : "read",
                () => flags.VmState ? backend.ReadVmStateAsync(offset, vector) : backend.ReadAsync(offset, vector)))
                return false;
        }
        catch (BlockException e)
        {
            s.Out.WriteLine($"{(vectored ? "readv" : "read")} failed: {Errno(e)}");
            return false;
        }
        sw.Stop();
        var data = vector.IsSingleSegment ? vector.FirstSegment : vector.ToArray();
        bool ok = true;
        if (flags.Pattern is { } expected && data.Span.Slice((int)patternOffset, (int)patternCount).IndexOfAnyExcept(expected) >= 0)
        {
            s.Out.WriteLine($"Pattern verification failed at offset {offset + patternOffset}, {patternCount} bytes");
            ok = false;
        }
        if (flags.Quiet)
            return ok;
        if (flags.Verbose)
            Dump(s.Out, data.Span, offset);
        Report(s, "read", sw.Elapsed, offset, count, 1, flags.Machine);
        return ok;
    }

    private static Task<bool> WriteAsync(IoSession s, string name, string[] args) => WriteCommonAsync(s, name, "bcCfnpP:qs:uz", args, vectored: false);

    private static Task<bool> WritevAsync(IoSession s, string name, string[] args) => WriteCommonAsync(s, name, "CfqP:", args, vectored: true);

    private static async Task<bool> WriteCommonAsync(IoSession s, string name, string spec, string[] args, bool vectored)
    {
        var (flags, operands) = ParseIo(s, name, spec, args, write: true);
        if (flags is null)
            return false;
        if (vectored ? operands.Count < 2 : operands.Count != 2)
            throw new UsageException();
        if (flags.Sources > 1)
        {
            s.Out.WriteLine("Only one of -z, -P, and -s can be specified at the same time");
            return false;
        }
        if (flags.Unmap && !flags.Zero)
        {
            s.Out.WriteLine("-u requires -z to be specified");
            return false;
        }
        if (Number(s, operands[0]) is not { } offset)
            return false;

        var requestFlags = (flags.Fua ? RequestFlags.Fua : 0) | (flags.Compressed ? RequestFlags.Compressed : 0);
        long count;
        var sw = new Stopwatch();
        try
        {
            if (flags.Zero)
            {
                if (Number(s, operands[1]) is not { } zeroCount)
                    return false;
                if (zeroCount > MaxRequest && !flags.NoFallback)
                {
                    s.Out.WriteLine($"length cannot exceed {MaxRequest} without -n, given {operands[1]}");
                    return false;
                }
                count = zeroCount;
                requestFlags |= (flags.Unmap ? RequestFlags.MayUnmap : 0) | (flags.NoFallback ? RequestFlags.NoFallback : 0);
                sw.Start();
                var backend = s.Backend!;
                if (!await RunSyncAsync(s, "write", () => backend.WriteZeroesAsync(offset, zeroCount, requestFlags)))
                    return false;
            }
            else
            {
                if (Segments(s, operands.Skip(1), flags.Pattern ?? 0xcd, out count) is not { } segments)
                    return false;
                if (flags.SourceFile is { } source)
                {
                    byte[] content;
                    try
                    {
                        content = File.ReadAllBytes(source);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        s.Cli.Err.WriteLine($"{source}: {(e is FileNotFoundException or DirectoryNotFoundException ? "No such file or directory" : e.Message)}");
                        return false;
                    }
                    content.AsSpan(0, (int)Math.Min(content.Length, count)).CopyTo(segments[0].Span);
                }
                sw.Start();
                var backend = s.Backend!;
                var vector = new IoVector(segments);
                if (!await RunSyncAsync(s, vectored ? "writev" : "write",
                    () => flags.VmState ? backend.WriteVmStateAsync(offset, vector) : backend.WriteAsync(offset, vector, requestFlags)))
                    return false;
            }
        }
        catch (BlockException e)
        {
            s.Out.WriteLine($"{(vectored ? "writev" : "write")} failed: {Errno(e)}");
            return false;
        }
        sw.Stop();
        if (!flags.Quiet)
            Report(s, "wrote", sw.Elapsed, offset, count, 1, flags.Machine);
        return true;
    }

    private static async Task<bool> DiscardAsync(IoSession s, string name, string[] args)
    {
        var (options, operands) = Options(s, name, "Cq", args);
        bool machine = options.Any(o => o.Code == "C");
        bool quiet = options.Any(o => o.Code == "q");
        if (operands.Count != 2)
            throw new UsageException();
        if (Number(s, operands[0]) is not { } offset || Number(s, operands[1]) is not { } count)
            return false;
        if (count > MaxRequest)
        {
            s.Out.WriteLine($"length cannot exceed {MaxRequest}, given {operands[1]}");
            return false;
        }
        var sw = Stopwatch.StartNew();
        try
        {
            var backend = s.Backend!;
            if (!await RunSyncAsync(s, "discard", () => backend.DiscardAsync(offset, count)))
                return false;
        }
        catch (BlockException e)
        {
            s.Out.WriteLine($"discard failed: {Errno(e)}");
            return false;
        }
        sw.Stop();
        if (!quiet)
            Report(s, "discard", sw.Elapsed, offset, count, 1, machine);
        return true;
    }

    private static async Task<bool> FlushAsync(IoSession s, string name, string[] args)
    {
        try
        {
            var backend = s.Backend!;
            return await RunSyncAsync(s, "flush", backend.FlushAsync);
        }
        catch (BlockException e)
        {
            s.Out.WriteLine($"flush failed: {Errno(e)}");
            return false;
        }
    }

    private static async Task<bool> TruncateAsync(IoSession s, string name, string[] args)
    {
        var (options, operands) = Options(s, name, "m:", args);
        var prealloc = PreallocMode.Off;
        foreach (var (code, arg) in options)
        {
            if (code == "m" && !QapiEnum<PreallocMode>.TryParse(arg!, out prealloc))
            {
                s.Cli.Error($"Invalid preallocation mode '{arg}'");
                return false;
            }
        }
        if (operands.Count != 1)
        {
            s.Out.WriteLine($"Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- {(operands.Count > 0 ? operands[0] : string.Empty)}");
            return false;
        }
        if (Number(s, operands[0]) is not { } size)
            return false;
        try
        {
            await s.Backend!.TruncateAsync(size, prealloc);
            return true;
        }
        catch (BlockException e)
        {
            s.Cli.Error(e.Message);
            return false;
        }
    }

    private static Task<bool> LengthAsync(IoSession s, string name, string[] args)
    {
        s.Out.WriteLine(QemuText.CvtStr(s.Backend!.Length));
        return Task.FromResult(true);
    }

    private static Task<bool> InfoAsync(IoSession s, string name, string[] args)
    {
        var root = s.Backend!.Root!;
        var info = root.GetImageInfo();
        s.Out.WriteLine($"format name: {root.DriverName}");
        s.Out.WriteLine($"cluster size: {QemuText.CvtStr(info.ClusterSize ?? 0)}");
        s.Out.WriteLine($"vm state offset: {QemuText.CvtStr(root.Impl.VmStateOffset)}");
        if (info.FormatSpecific is { } specific)
        {
            s.Out.WriteLine("Format specific information:");
            var data = (System.Text.Json.Nodes.JsonObject)QemuJson.ToNode(specific, QapiJsonContext.Default.ImageInfoSpecific)!["data"]!;
            InfoCommand.WriteDump(s.Out, data, 1);
        }
        return Task.FromResult(true);
    }

    private static async Task<bool> MapAsync(IoSession s, string name, string[] args)
    {
        var root = s.Backend!.Root!;
        long length = root.Length;
        long offset = 0;
        while (offset < length)
        {
            bool allocated = false;
            long run = 0;
            while (offset + run < length)
            {
                // Like qemu-io, what the image itself holds: data of its backing files counts as not allocated.
                var status = await root.GetBlockStatusAsync(offset + run, length - offset - run);
                if (status.Bytes <= 0)
                    break;
                bool a = status.Has(BlockStatusFlags.Allocated);
                if (run > 0 && a != allocated)
                    break;
                allocated = a;
                run += status.Bytes;
            }
            if (run == 0)
                break;
            s.Out.WriteLine($"{QemuText.CvtStr(run)} (0x{run:x}) bytes {(allocated ? "    allocated" : "not allocated")} at offset {QemuText.CvtStr(offset)} (0x{offset:x})");
            offset += run;
        }
        return true;
    }

    private static async Task<bool> AllocAsync(IoSession s, string name, string[] args)
    {
        if (Number(s, args[0]) is not { } offset)
            return false;
        long count = 512;
        if (args.Length > 1)
        {
            if (Number(s, args[1]) is not { } c)
                return false;
            count = c;
        }
        var root = s.Backend!.Root!;
        long length = root.Length;
        count = Math.Max(0, Math.Min(count, length - offset));
        long allocated = 0;
        for (long pos = offset; pos < offset + count;)
        {
            var status = await root.GetBlockStatusAsync(pos, offset + count - pos);
            if (status.Bytes <= 0)
                break;
            if (status.Has(BlockStatusFlags.Allocated))
                allocated += status.Bytes;
            pos += status.Bytes;
        }
        s.Out.WriteLine($"{allocated}/{count} bytes allocated at offset {QemuText.CvtStr(offset)}");
        return true;
    }

    private static async Task<bool> SleepAsync(IoSession s, string name, string[] args)
    {
        if (!long.TryParse(args[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long ms))
        {
            s.Out.WriteLine($"{args[0]} is not a valid number");
            return false;
        }
        // As qemu-io's sleep, the wait lets in-flight requests finish and print.
        await s.Aio.SleepAsync(TimeSpan.FromMilliseconds(Math.Max(ms, 0)));
        return true;
    }

    private static async Task<bool> OpenAsync(IoSession s, string name, string[] args)
    {
        var (options, operands) = Options(s, name, "rsCnkt:d:o:Ui:", args);
        var open = new OpenArgs { Filename = string.Empty, Cache = new CacheMode(false, false, true), Discard = BlockdevDiscardOptions.Unmap };
        string? optionText = null;
        foreach (var (code, arg) in options)
        {
            switch (code)
            {
                case "r":
                    open = open with { ReadOnly = true };
                    break;
                case "s":
                    s.Cli.Error("snapshot mode (-s) needs a qcow2 overlay, which this build cannot create");
                    return false;
                case "C":
                    break;
                case "n":
                    open = open with { Cache = open.Cache with { Direct = true, WriteThrough = false } };
                    break;
                case "k":
                    open = open with { Aio = BlockdevAioOptions.Native };
                    break;
                case "i":
                    if (!QapiEnum<BlockdevAioOptions>.TryParse(arg!, out var aio))
                    {
                        s.Cli.Error($"Invalid aio option: {arg}");
                        return false;
                    }
                    open = open with { Aio = aio };
                    break;
                case "t":
                    if (!CacheMode.TryParse(arg!, out var cache))
                    {
                        s.Cli.Error($"Invalid cache option: {arg}");
                        return false;
                    }
                    open = open with { Cache = cache };
                    break;
                case "d":
                    if (!QemuIo.TryParseDiscard(arg!, out var discard))
                    {
                        s.Cli.Error($"Invalid discard option: {arg}");
                        return false;
                    }
                    open = open with { Discard = discard };
                    break;
                case "o":
                    optionText = arg;
                    break;
                case "U":
                    open = open with { ForceShare = true };
                    break;
            }
        }
        if (operands.Count > 1)
            throw new UsageException();
        if (s.Backend != null)
        {
            s.Cli.Error("file open already, try 'help close'");
            return false;
        }
        if (operands.Count == 1)
        {
            open = open with { Filename = operands[0] };
            if (optionText != null)
            {
                var tree = KeyValueParser.Parse(optionText);
                if (tree["driver"] is System.Text.Json.Nodes.JsonValue driver)
                {
                    open = open with { Format = driver.GetValue<string>() };
                    tree.Remove("driver");
                }
                if (tree.Count > 0)
                    open = open with { ExtraOptions = optionText.Split(',').Where(p => !p.StartsWith("driver=", StringComparison.Ordinal)).Aggregate((a, b) => a + "," + b) };
            }
        }
        else if (optionText != null)
        {
            open = open with { Filename = optionText, ImageOpts = true };
        }
        else
        {
            throw new UsageException();
        }
        if (open.Aio == BlockdevAioOptions.Native && !open.Cache.Direct)
        {
            s.Cli.Error($"can't open device {open.Filename}: aio=native was specified, but it requires cache.direct=on, which was not specified.");
            return false;
        }
        return await s.OpenAsync(open);
    }

    private static async Task<bool> CloseAsync(IoSession s, string name, string[] args)
    {
        await s.CloseAsync();
        return true;
    }

    private static Task<bool> HelpAsync(IoSession s, string name, string[] args)
    {
        if (args.Length == 1)
        {
            var command = Find(args[0]);
            if (command is null)
            {
                s.Out.WriteLine($"command {args[0]} not found");
                return Task.FromResult(false);
            }
            s.Out.WriteLine(command.Usage(args[0]));
            if (command.Help != null)
                s.Out.Write(command.Help);
            return Task.FromResult(true);
        }
        foreach (var c in s_commands.OrderBy(c => c.Name, StringComparer.Ordinal))
            s.Out.WriteLine(c.Usage(c.Name));
        s.Out.WriteLine();
        s.Out.WriteLine("Use 'help commandname' for extended help.");
        return Task.FromResult(true);
    }
}
