using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>Starts the built <c>blk serve</c> as a process, with the command line qemu-storage-daemon takes.</summary>
internal static class BlkServe
{
    /// <summary>The blk assembly the test project copies beside itself.</summary>
    public static string Assembly => typeof(Blk).Assembly.Location;

    /// <summary>Starts <c>blk serve ARGS</c> with a monitor of its own, connected and negotiated.</summary>
    public static Task<QemuStorageDaemon> StartAsync(params string[] arguments) =>
        QemuStorageDaemon.StartAsync("dotnet", [Assembly, "serve"], arguments);

    /// <summary>Runs <c>blk serve ARGS</c> to its end (for command lines that fail at startup).</summary>
    public static ProcessResult Run(params string[] arguments) =>
        ProcessRunner.Run("dotnet", [Assembly, "serve", .. arguments], TimeSpan.FromSeconds(60));
}
