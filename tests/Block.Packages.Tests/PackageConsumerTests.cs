using System.IO.Compression;

namespace Block.Packages.Tests;

/// <summary>
/// The packages work outside the solution: a project that references only them, restored from a local folder feed,
/// builds and runs; each package carries what NuGet users expect (id, one version, description, tags, the MIT
/// licence, its own README, XML docs, a symbol package), and <c>blk</c> is a .NET tool.
/// </summary>
public class PackageConsumerTests(PackageFeed feed) : IClassFixture<PackageFeed>
{
    private static readonly string[] s_libraries = ["Block", "Block.Qcow2", "Block.Vmdk", "Block.Formats", "Block.Crypto", "Block.Qmp", "Block.Nbd", "Block.Ssh", "Block.Curl", "Block.Iscsi", "Block.Rbd", "Block.Nfs", "Block.Gluster"];

    [Fact]
    public void A_project_using_only_the_packages_writes_reads_streams_makes_vmdk_vdi_and_luks_images_and_serves_nbd()
    {
        string consumer = Path.Combine(AppContext.BaseDirectory, "Consumer");
        var files = Directory.GetFiles(consumer).ToDictionary(f => Path.GetFileName(f), File.ReadAllText);
        var r = feed.BuildAndRun("Consumer", files, ".");
        Assert.True(r.ExitCode == 0, $"the consumer failed ({r.ExitCode}):\n{r.Stdout}\n{r.Stderr}");
        Assert.Equal(
            "qcow2: 67108864 bytes, 64 KiB written and read back\n" +
            "stream: read and written at any position\n" +
            "vmdk: monolithicSparse and streamOptimized made, written and read back\n" +
            "vdi: made, written and read back\n" +
            "luks: made with a secret, unlocked, written and read back encrypted\n" +
            "nbd: the qcow2 disk served and read back, written through the export\n", r.Stdout);
    }

    /// <summary>The C# example of the README's "Using the library", as it is written there, built against the packages and run.</summary>
    [Fact]
    public void The_readme_example_builds_against_the_packages_and_does_what_it_says()
    {
        string readme = File.ReadAllText(Path.Combine(feed.RepositoryRoot, "README.md"));
        const string Marker = "<!-- example: readme-quick-start -->\n```csharp\n";
        int start = readme.IndexOf(Marker, StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no example marked readme-quick-start");
        start += Marker.Length;
        string code = readme[start..readme.IndexOf("```", start, StringComparison.Ordinal)];
        string project = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Consumer", "Consumer.csproj"));
        var r = feed.BuildAndRun("ReadmeExample", new Dictionary<string, string> { ["ReadmeExample.csproj"] = project, ["Program.cs"] = code });
        Assert.True(r.ExitCode == 0, $"the README example failed ({r.ExitCode}):\n{r.Stdout}\n{r.Stderr}");
        Assert.Equal("qcow2: read back what was written\nraw: 65536 bytes copied, same data\n", r.Stdout);
    }

    [Fact]
    public void Every_library_package_has_its_id_version_metadata_readme_xml_docs_and_symbols()
    {
        foreach (string id in s_libraries)
        {
            using var package = ZipFile.OpenRead(Path.Combine(feed.Feed, $"{id}.{feed.Version}.nupkg"));
            string nuspec = Read(package, $"{id}.nuspec");
            Assert.Contains($"<id>{id}</id>", nuspec, StringComparison.Ordinal);
            Assert.Contains($"<version>{feed.Version}</version>", nuspec, StringComparison.Ordinal);
            Assert.Contains("<license type=\"expression\">MIT</license>", nuspec, StringComparison.Ordinal);
            Assert.Contains("<readme>README.md</readme>", nuspec, StringComparison.Ordinal);
            Assert.Matches("<description>[^<]{20,}</description>", nuspec);
            Assert.Matches("<tags>[^<]+</tags>", nuspec);
            Assert.StartsWith($"# {id}", Read(package, "README.md"), StringComparison.Ordinal);
            Assert.NotNull(package.GetEntry($"lib/net10.0/{id}.dll"));
            Assert.NotNull(package.GetEntry($"lib/net10.0/{id}.xml"));
            using var symbols = ZipFile.OpenRead(Path.Combine(feed.Feed, $"{id}.{feed.Version}.snupkg"));
            Assert.NotNull(symbols.GetEntry($"lib/net10.0/{id}.pdb"));
        }
    }

    [Fact]
    public void Blk_is_packed_as_a_dotnet_tool_named_blk()
    {
        using var package = ZipFile.OpenRead(Path.Combine(feed.Feed, $"Block.Cli.{feed.Version}.nupkg"));
        Assert.Contains("<packageType name=\"DotnetTool\" />", Read(package, "Block.Cli.nuspec"), StringComparison.Ordinal);
        string settings = Read(package, "tools/net10.0/any/DotnetToolSettings.xml");
        Assert.Contains("<Command Name=\"blk\" EntryPoint=\"blk.dll\" Runner=\"dotnet\" />", settings, StringComparison.Ordinal);
    }

    private static string Read(ZipArchive package, string entry)
    {
        using var reader = new StreamReader((package.GetEntry(entry) ?? throw new InvalidOperationException($"no {entry} in the package")).Open());
        return reader.ReadToEnd();
    }
}
