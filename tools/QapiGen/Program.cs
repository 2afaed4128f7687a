using Block.Tools.QapiGen;

// qapi-gen BLOCK-CORE.JSON [--supplement FILE] [--output FILE]
// Reads QEMU's block-core.json and our supplement and writes the schema table of Block.Qmp.
string? schemaPath = null;
string? supplementPath = null;
string? outputPath = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--supplement" when i + 1 < args.Length:
            supplementPath = args[++i];
            break;
        case "--output" when i + 1 < args.Length:
            outputPath = args[++i];
            break;
        case "-h" or "--help":
            Console.WriteLine("usage: qapi-gen BLOCK-CORE.JSON [--supplement FILE] [--output FILE]");
            return 0;
        default:
            if (schemaPath != null || args[i].StartsWith('-'))
            {
                Console.Error.WriteLine($"qapi-gen: unexpected argument '{args[i]}'");
                return 2;
            }
            schemaPath = args[i];
            break;
    }
}
if (schemaPath is null)
{
    Console.Error.WriteLine("usage: qapi-gen BLOCK-CORE.JSON [--supplement FILE] [--output FILE]");
    return 2;
}

string? root = RepositoryRoot();
if ((supplementPath is null || outputPath is null) && root is null)
{
    Console.Error.WriteLine("qapi-gen: run inside the repository, or give --supplement and --output");
    return 2;
}
supplementPath ??= Path.Combine(root!, "tools", "QapiGen", "qmp-supplement.json");
outputPath ??= Path.Combine(root!, "Block.Qmp", "Schema", "QapiSchema.Generated.cs");

try
{
    var schema = QapiReader.Parse(File.ReadAllText(schemaPath), Path.GetFileName(schemaPath));
    var supplement = QapiReader.Parse(File.ReadAllText(supplementPath), Path.GetFileName(supplementPath));
    var definitions = SchemaLoader.Load(schema, supplement);
    string text = TableWriter.Write(definitions, [Path.GetFileName(schemaPath), "tools/QapiGen/" + Path.GetFileName(supplementPath)]);
    File.WriteAllText(outputPath, text);
    Console.WriteLine($"qapi-gen: {definitions.Count} definitions written to {outputPath}");
    return 0;
}
catch (Exception e) when (e is QapiSchemaException or IOException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"qapi-gen: {e.Message}");
    return 1;
}

static string? RepositoryRoot()
{
    for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir != null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "Block.sln")))
            return dir.FullName;
    }
    return null;
}
