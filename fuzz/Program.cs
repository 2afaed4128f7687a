using Block.Fuzz.Targets;
using SharpFuzz;

// blk-fuzz TARGET            run under AFL++ (instrumented with `sharpfuzz`, see README.md)
// blk-fuzz TARGET PATH...    replay files or folders of inputs, e.g. a crash AFL found, with a stack trace
if (args.Length == 0 || FuzzTargets.Find(args[0]) is not { } target)
{
    Console.Error.WriteLine($"usage: blk-fuzz {{{string.Join('|', FuzzTargets.All.Select(t => t.Name))}}} [input-file-or-dir...]");
    return 2;
}

if (args.Length > 1)
{
    foreach (var path in args.Skip(1))
    {
        var files = Directory.Exists(path) ? Directory.GetFiles(path) : [path];
        foreach (var file in files)
            FuzzTargets.RunOne(target, File.ReadAllBytes(file));
    }
    Console.WriteLine("no finding");
    return 0;
}

Fuzzer.OutOfProcess.Run(stream =>
{
    using var ms = new MemoryStream();
    stream.CopyTo(ms);
    FuzzTargets.RunOne(target, ms.ToArray());
});
return 0;
