namespace Block.TestSupport;

/// <summary>
/// An independent FAT reader: Debian's mtools (<c>mdir</c>, <c>mcopy</c>), on a disk image at a byte offset (the
/// partition's start), as <c>-i image@@offset</c>. The test command installs it.
/// </summary>
public static class Mtools
{
    private static string Tool(string name) => ProcessRunner.Which(name)
        ?? throw new InvalidOperationException($"{name} is not installed: the vvfat tests need Debian's mtools (run ./test.sh, which installs it)");

    private static Dictionary<string, string> Environment => new()
    {
        // No user or system configuration may change how mtools reads the image.
        ["MTOOLSRC"] = "/dev/null",
        // Long names in UTF-8, as the host directory has them.
        ["LANG"] = "C.UTF-8",
    };

    /// <summary>The recursive listing of every entry (<c>mdir -/ -a</c>), or throws with mtools' error.</summary>
    public static string ListAll(string image, long offset) =>
        ProcessRunner.Run(Tool("mdir"), ["-/", "-a", "-i", $"{image}@@{offset}", "::"], environment: Environment)
            .EnsureSuccess($"mdir of {image}").Stdout;

    /// <summary>Runs <c>mdir</c> on the root and returns the result whatever it is.</summary>
    public static ProcessResult TryList(string image, long offset) =>
        ProcessRunner.Run(Tool("mdir"), ["-i", $"{image}@@{offset}", "::"], environment: Environment);

    /// <summary>Copies every file and directory out of the volume into <paramref name="destination"/> (<c>mcopy -s -m</c>).</summary>
    public static void ExtractAll(string image, long offset, string destination)
    {
        Directory.CreateDirectory(destination);
        ProcessRunner.Run(Tool("mcopy"), ["-s", "-n", "-m", "-i", $"{image}@@{offset}", "::", destination + "/"], environment: Environment)
            .EnsureSuccess($"mcopy from {image}");
    }

    /// <summary>
    /// Runs an mtools command that changes the volume (<c>mcopy</c>, <c>mdel</c>, <c>mren</c>, <c>mmove</c>, <c>mmd</c>,
    /// <c>mrd</c>) with <c>-i image@@offset</c> before <paramref name="args"/>, or throws with mtools' error.
    /// </summary>
    public static void Change(string image, long offset, string tool, params string[] args) =>
        ProcessRunner.Run(Tool(tool), ["-i", $"{image}@@{offset}", .. args], environment: Environment)
            .EnsureSuccess($"{tool} {string.Join(' ', args)} on {image}");
}
