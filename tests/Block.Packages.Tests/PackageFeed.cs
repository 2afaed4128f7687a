using System.Diagnostics;
using Block.TestSupport;

namespace Block.Packages.Tests;

/// <summary>
/// The repository's packages, packed once (<c>dotnet pack Block.sln</c>) into a temporary folder feed, and the tools
/// to build and run a project against that feed alone: a <c>nuget.config</c> naming the folder beside the machine's
/// usual sources, and a private packages folder so that a package packed again is never taken from a stale cache.
/// </summary>
public sealed class PackageFeed : IDisposable
{
    public PackageFeed()
    {
        RepositoryRoot = FindRepositoryRoot();
        Run("dotnet", ["pack", Path.Combine(RepositoryRoot, "Block.sln"), "-c", "Release", "-o", Feed, "-nologo", "-v", "quiet",
            "-clp:ErrorsOnly", "--disable-build-servers"]).EnsureSuccess("dotnet pack");
        string qcow2 = Directory.GetFiles(Feed, "Block.Qcow2.*.nupkg").Single();
        Version = Path.GetFileName(qcow2)["Block.Qcow2.".Length..^".nupkg".Length];
    }

    /// <summary>The checkout the tests run from (the folder holding <c>Block.sln</c>).</summary>
    public string RepositoryRoot { get; }

    /// <summary>The folder feed the packages were packed into.</summary>
    public string Feed => Path.Combine(_dir.Path, "feed");

    /// <summary>The version every package was packed with.</summary>
    public string Version { get; }

    private readonly TempDirectory _dir = new();

    /// <summary>
    /// Copies <paramref name="files"/> (name → text) into a new folder with a <c>nuget.config</c> for the feed, builds
    /// and runs the project there with <paramref name="args"/>, and returns what it printed.
    /// </summary>
    public ProcessResult BuildAndRun(string name, IReadOnlyDictionary<string, string> files, params string[] args)
    {
        string project = Path.Combine(_dir.Path, name);
        Directory.CreateDirectory(project);
        foreach (var (file, text) in files)
            File.WriteAllText(Path.Combine(project, file), text);
        string globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // The feed first; the machine's package cache as a folder feed for the packages' own dependencies (offline);
        // the machine's configured sources (inherited from the user's NuGet.Config) for anything else.
        File.WriteAllText(Path.Combine(project, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="block-packages" value="{Feed}" />
                <add key="machine-package-cache" value="{globalPackages}" />
              </packageSources>
            </configuration>
            """);
        string output = Path.Combine(project, "out");
        Run("dotnet", ["build", project, "-c", "Release", "-o", output, "-nologo", "-v", "quiet", "-clp:ErrorsOnly", "--disable-build-servers",
            $"-p:BlockVersion={Version}", $"-p:RestorePackagesPath={Path.Combine(_dir.Path, "packages")}"], project)
            .EnsureSuccess($"dotnet build {name}");
        string work = Path.Combine(project, "work");
        Directory.CreateDirectory(work);
        return Run("dotnet", [Path.Combine(output, name + ".dll"), .. args], work);
    }

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// Runs a program without the MSBuild variables the test host inherits from <c>dotnet test</c>, which would point
    /// a nested build at the outer one's MSBuild.
    /// </summary>
    private static ProcessResult Run(string program, IEnumerable<string> args, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase) || k == "DOTNET_HOST_PATH").ToList())
        {
            psi.Environment.Remove(key);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in 10 minutes");
        }
        p.WaitForExit();
        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Block.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"no Block.sln above {AppContext.BaseDirectory}");
    }
}
