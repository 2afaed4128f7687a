using Block.Cli;

var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
var stderr = new StreamWriter(Console.OpenStandardError()) { AutoFlush = true };
try
{
    return await Blk.RunAsync(args, stdout, stderr, Console.In);
}
finally
{
    stdout.Flush();
}
