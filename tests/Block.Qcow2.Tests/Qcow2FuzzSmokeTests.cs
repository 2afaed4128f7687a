using System.Buffers.Binary;
using Block.Fuzz.Targets;

namespace Block.Qcow2.Tests;

/// <summary>
/// A bounded, deterministic fuzz of the <c>qcow2</c> SharpFuzz target (header parsing, metadata walk, check and a few
/// writes): the seeds open cleanly, and mutations of them — bit flips, boundary values poked into header fields and
/// table entries, truncations — may only be refused with a <see cref="BlockException"/>, never crash, hang or
/// allocate without bound. AFL++ runs go further (fuzz/README.md).
/// </summary>
public class Qcow2FuzzSmokeTests
{
    private static readonly IFuzzTarget s_target = FuzzTargets.Find("qcow2")!;

    public static TheoryData<string> Seeds()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(CorpusDirectory()).Order(StringComparer.Ordinal))
            data.Add(Path.GetFileName(file));
        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Every_seed_is_walked_and_written_without_a_refusal(string seed)
    {
        // Straight to the target: a seed the harness refused would fuzz nothing past the refusal.
        s_target.Run(File.ReadAllBytes(Path.Combine(CorpusDirectory(), seed)));
    }

    [Fact]
    public async Task Mutated_seeds_are_handled_or_refused_cleanly()
    {
        var seeds = Directory.GetFiles(CorpusDirectory()).Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToList();
        var rng = new Random(20261126);
        ulong[] interesting = [0, 1, 0x1ff, 0x200, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x8000000000000000, 0x7fffffffffffffff,
            0xffffffffffffffff, 0x00fffffffffffe00, 0x4000000000000000, 0x8000000000000200];
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(25);
        int runs = 0;
        while (runs < 4000 && DateTime.UtcNow < deadline)
        {
            var seed = seeds[rng.Next(seeds.Count)];
            var input = Mutate(seed, rng, interesting);
            runs++;
            try
            {
                await Task.Run(() => FuzzTargets.RunOne(s_target, input)).WaitAsync(Hostile.Limit);
            }
            catch (TimeoutException)
            {
                Assert.Fail($"input of {input.Length} bytes (saved as {Save(input)}) did not finish in {Hostile.Limit.TotalSeconds} s");
            }
            catch (Exception e)
            {
                Assert.Fail($"input of {input.Length} bytes (saved as {Save(input)}) threw {e}");
            }
        }
        Assert.True(runs >= 500, $"only {runs} runs in the time budget");
    }

    private static byte[] Mutate(byte[] seed, Random rng, ulong[] interesting)
    {
        var input = (byte[])seed.Clone();
        int mutations = rng.Next(1, 5);
        for (int m = 0; m < mutations; m++)
        {
            // Most mutations go where the parser and the table walk look: the header and the first clusters.
            int limit = rng.Next(4) == 0 ? input.Length : Math.Min(input.Length, 4096);
            int pos = rng.Next(Math.Max(1, limit));
            switch (rng.Next(6))
            {
                case 0:
                    input[pos] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1:
                    input[pos] = (byte)rng.Next(256);
                    break;
                case 2 when pos + 8 <= input.Length:
                    BinaryPrimitives.WriteUInt64BigEndian(input.AsSpan(pos & ~7), interesting[rng.Next(interesting.Length)]);
                    break;
                case 3 when pos + 4 <= input.Length:
                    BinaryPrimitives.WriteUInt32BigEndian(input.AsSpan(pos & ~3), (uint)interesting[rng.Next(interesting.Length)]);
                    break;
                case 4:
                    Array.Resize(ref input, Math.Max(1, pos));
                    break;
                default:
                    // A header field, exactly: sizes, offsets, counts and feature bits.
                    int[] fields = [20, 24, 36, 40, 48, 56, 60, 64, 72, 88, 96, 100];
                    int field = fields[rng.Next(fields.Length)];
                    if (field + 8 <= input.Length)
                        BinaryPrimitives.WriteUInt64BigEndian(input.AsSpan(field), interesting[rng.Next(interesting.Length)] >> (8 * rng.Next(8)));
                    break;
            }
        }
        return input;
    }

    private static string Save(byte[] input)
    {
        string path = Path.Combine(Path.GetTempPath(), $"qcow2-fuzz-finding-{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(input))[..16]}");
        File.WriteAllBytes(path, input);
        return path;
    }

    private static string CorpusDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Block.sln")))
                return Path.Combine(dir.FullName, "fuzz", "corpus", "qcow2");
        }
        throw new InvalidOperationException("Block.sln not found above the test directory");
    }
}
