namespace Block.TestSupport;

/// <summary>Test data helpers.</summary>
public static class Patterns
{
    /// <summary>A buffer of <paramref name="length"/> bytes all equal to <paramref name="value"/> (qemu-io's <c>-P</c>).</summary>
    public static byte[] Fill(int length, byte value)
    {
        var b = new byte[length];
        b.AsSpan().Fill(value);
        return b;
    }

    /// <summary>Deterministic pseudo-random bytes.</summary>
    public static byte[] Random(int length, int seed)
    {
        var b = new byte[length];
        new System.Random(seed).NextBytes(b);
        return b;
    }
}
