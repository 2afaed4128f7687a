using System.Text;
using Block.Crypto.Kdf;
using Block.Crypto.Luks;
using Block.Crypto.Qapi;

namespace Block.Crypto.Tests;

/// <summary>PBKDF2 against RFC 6070 and RFC 7914-style vectors; the anti-forensic splitter's round trip and diffusion.</summary>
public class KdfAndSplitterTests
{
    [Theory]
    [InlineData(CryptoHashAlgorithm.Sha1, 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6")]
    [InlineData(CryptoHashAlgorithm.Sha1, 2, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957")]
    [InlineData(CryptoHashAlgorithm.Sha1, 4096, 20, "4b007901b765489abead49d926f721d065a429c1")]
    [InlineData(CryptoHashAlgorithm.Sha256, 1, 32, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b")]
    [InlineData(CryptoHashAlgorithm.Sha512, 2, 64, "e1d9c16aa681708a45f5c7c4e215ceb66e011a2e9f0040713f18aefdb866d53cf76cab2868a39b9f7840edce4fef5a82be67335c77a6068e04112754f27ccf4e")]
    [InlineData(CryptoHashAlgorithm.Md5, 1000, 40, "8d189946a32d883622a16ae18af0632f5791d5e7b1abb0ab1757d28ce34056140335105994495f91")]
    public void Pbkdf2_matches_published_vectors(CryptoHashAlgorithm hash, uint iterations, int length, string expected)
    {
        var output = new byte[length];
        Pbkdf2.Derive(hash, Encoding.ASCII.GetBytes("password"), Encoding.ASCII.GetBytes("salt"), iterations, output);
        Assert.Equal(expected, Hex.Of(output));
    }

    /// <summary>
    /// The derivation on reused HMAC states gives the platform's bytes for every hash, outputs of one block, several
    /// blocks and a part of one, passwords longer than a block (hashed first), long salts, and iteration counts
    /// around the point where blocks go to separate cores.
    /// </summary>
    [Theory]
    [InlineData(CryptoHashAlgorithm.Md5)]
    [InlineData(CryptoHashAlgorithm.Sha1)]
    [InlineData(CryptoHashAlgorithm.Sha256)]
    [InlineData(CryptoHashAlgorithm.Sha384)]
    [InlineData(CryptoHashAlgorithm.Sha512)]
    public void Pbkdf2_on_reused_hmac_states_derives_what_the_platform_derives(CryptoHashAlgorithm hash)
    {
        Assert.True(Pbkdf2.UsesPadStates(hash), "libcrypto's compression functions were not found: the fast PBKDF2 is not in use");
        var random = new Random((int)hash);
        foreach (int passwordLength in new[] { 0, 6, 64, 129, 300 })
        {
            foreach (int saltLength in new[] { 0, 32, 55, 56, 119, 200 })
            {
                foreach (int outputLength in new[] { 1, 20, 32, 64, 100 })
                {
                    foreach (uint iterations in new uint[] { 1, 2, 3, 9_999, 10_000 })
                    {
                        if (iterations > 3 && (passwordLength != 6 || saltLength != 32))
                            continue;
                        var password = new byte[passwordLength];
                        var salt = new byte[saltLength];
                        random.NextBytes(password);
                        random.NextBytes(salt);
                        var expected = new byte[outputLength];
                        var actual = new byte[outputLength];
                        var oneCore = new byte[outputLength];
                        Pbkdf2.DeriveWithPlatform(hash, password, salt, iterations, expected);
                        Pbkdf2.Derive(hash, password, salt, iterations, actual);
                        Pbkdf2.DeriveOnOneCore(hash, password, salt, iterations, oneCore);
                        Assert.True(expected.AsSpan().SequenceEqual(actual) && expected.AsSpan().SequenceEqual(oneCore),
                            $"{hash}: password {passwordLength} B, salt {saltLength} B, {outputLength} B after {iterations} iterations");
                    }
                }
            }
        }
    }

    /// <summary>The digests read out of the compression function equal the platform's, for messages across block boundaries.</summary>
    [Theory]
    [InlineData(CryptoHashAlgorithm.Md5)]
    [InlineData(CryptoHashAlgorithm.Sha1)]
    [InlineData(CryptoHashAlgorithm.Sha256)]
    [InlineData(CryptoHashAlgorithm.Sha384)]
    [InlineData(CryptoHashAlgorithm.Sha512)]
    public void Digests_over_the_compression_function_equal_the_platforms(CryptoHashAlgorithm hash)
    {
        var compression = Hashing.DigestCompression.For(hash)!;
        var random = new Random(7);
        for (int length = 0; length <= 300; length++)
        {
            var message = new byte[length];
            random.NextBytes(message);
            var expected = new byte[Hashing.CryptoHash.DigestSize(hash)];
            var actual = new byte[expected.Length];
            Hashing.CryptoHash.Hash(hash, message, expected);
            compression.Hash(message, actual);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"{hash} of {length} bytes");
        }
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(0x80000000u)]
    public void Pbkdf2_refuses_iteration_counts_out_of_range(uint iterations)
    {
        var e = Assert.Throws<BlockException>(() => Pbkdf2.Derive(CryptoHashAlgorithm.Sha256, [1], [2], iterations, new byte[32]));
        Assert.Equal(Errno.EINVAL, e.Errno);
    }

    [Fact]
    public void Calibration_scales_with_the_time_budget_and_refuses_counts_LUKS_cannot_store()
    {
        ulong ten = Pbkdf2.IterationsFor(CryptoHashAlgorithm.Sha256, 32, 10);
        Assert.InRange(ten, 1000UL, 100_000_000UL);
        var e = Assert.Throws<BlockException>(() => Pbkdf2.IterationsFor(CryptoHashAlgorithm.Sha256, 32, ulong.MaxValue - 4));
        Assert.Contains("too large to scale", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Calibration_counts_the_threads_cpu_time_so_a_loaded_machine_does_not_shrink_the_count()
    {
        ulong idle = Pbkdf2.IterationsFor(CryptoHashAlgorithm.Sha256, 32, 10);
        using var stop = new CancellationTokenSource();
        var spinners = Enumerable.Range(0, Environment.ProcessorCount * 4)
            .Select(_ => new Thread(() => { while (!stop.IsCancellationRequested) Thread.SpinWait(1000); }) { IsBackground = true })
            .ToArray();
        foreach (var spinner in spinners)
            spinner.Start();
        ulong loaded;
        try
        {
            loaded = Pbkdf2.IterationsFor(CryptoHashAlgorithm.Sha256, 32, 10);
        }
        finally
        {
            stop.Cancel();
            foreach (var spinner in spinners)
                spinner.Join();
        }
        // Wall time would divide the count by about the number of runnable threads per core (five here).
        Assert.True(loaded * 3 >= idle, $"{loaded} iterations with every core busy, {idle} without");
    }

    [Theory]
    [InlineData(CryptoHashAlgorithm.Sha1, 64)]
    [InlineData(CryptoHashAlgorithm.Sha256, 32)]
    [InlineData(CryptoHashAlgorithm.Sha256, 24)]
    [InlineData(CryptoHashAlgorithm.Sha512, 64)]
    [InlineData(CryptoHashAlgorithm.Md5, 48)]
    public void Split_then_merge_gives_the_key_back_and_every_stripe_matters(CryptoHashAlgorithm hash, int keyLength)
    {
        var key = new byte[keyLength];
        new Random(keyLength).NextBytes(key);
        var material = new byte[keyLength * 4000];
        AfSplitter.Split(hash, key, 4000, material);
        var merged = new byte[keyLength];
        AfSplitter.Merge(hash, material, 4000, merged);
        Assert.Equal(key, merged);
        // One flipped bit in the first stripe scrambles the digest-sized piece of the key it falls in (the diffusion
        // hashes each piece on its own, 3999 times over).
        material[3] ^= 1;
        AfSplitter.Merge(hash, material, 4000, merged);
        int piece = Math.Min(keyLength, Hashing.CryptoHash.DigestSize(hash));
        Assert.True(key.Take(piece).Zip(merged.Take(piece)).Count(p => p.First != p.Second) > piece / 2);
        Assert.Equal(key.Skip(piece), merged.Skip(piece));
    }

    [Fact]
    public void Splitting_twice_gives_different_material_for_the_same_key()
    {
        var key = new byte[32];
        var a = new byte[32 * 4000];
        var b = new byte[32 * 4000];
        AfSplitter.Split(CryptoHashAlgorithm.Sha256, key, 4000, a);
        AfSplitter.Split(CryptoHashAlgorithm.Sha256, key, 4000, b);
        Assert.NotEqual(a, b);
    }
}
