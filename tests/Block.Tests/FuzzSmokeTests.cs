using Block.Fuzz.Targets;

namespace Block.Tests;

/// <summary>
/// A bounded, deterministic fuzz of every SharpFuzz target: random mutations of the seed corpus may only be
/// refused with a <see cref="BlockException"/>. AFL++ runs find more (see fuzz/README.md); this keeps known shapes
/// from regressing.
/// </summary>
public class FuzzSmokeTests
{
    public static TheoryData<string> Targets()
    {
        var data = new TheoryData<string>();
        foreach (var t in FuzzTargets.All)
            data.Add(t.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Mutated_corpus_inputs_are_parsed_or_refused_cleanly(string name)
    {
        var target = FuzzTargets.Find(name)!;
        string corpus = Path.Combine(FindRepositoryRoot(), "fuzz", "corpus", name);
        var seeds = Directory.GetFiles(corpus).Select(File.ReadAllBytes).ToList();
        Assert.NotEmpty(seeds);
        var rng = new Random(1234);
        byte[] alphabet = "=,.:{}[]\"\\0123456789abcdefkMGTEx-+ \n"u8.ToArray();
        for (int i = 0; i < 20000; i++)
        {
            var input = seeds[rng.Next(seeds.Count)].ToList();
            int mutations = rng.Next(1, 6);
            for (int m = 0; m < mutations; m++)
            {
                int pos = input.Count == 0 ? 0 : rng.Next(input.Count);
                switch (rng.Next(5))
                {
                    case 0 when input.Count > 0:
                        input[pos] ^= (byte)(1 << rng.Next(8));
                        break;
                    case 1:
                        input.Insert(pos, alphabet[rng.Next(alphabet.Length)]);
                        break;
                    case 2 when input.Count > 0:
                        input.RemoveAt(pos);
                        break;
                    case 3:
                        var other = seeds[rng.Next(seeds.Count)];
                        input.InsertRange(pos, other.Take(rng.Next(other.Length + 1)));
                        break;
                    default:
                        input.Insert(pos, (byte)rng.Next(256));
                        break;
                }
            }
            var bytes = input.ToArray();
            try
            {
                FuzzTargets.RunOne(target, bytes);
            }
            catch (Exception e)
            {
                Assert.Fail($"{name}: input {Convert.ToHexString(bytes)} threw {e}");
            }
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Block.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException("Block.sln not found above the test directory");
    }
}
