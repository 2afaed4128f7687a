namespace Block.Qcow2.Tests;

/// <summary>Runs an operation on a hostile image: it must finish quickly and may fail only with a <see cref="BlockException"/>.</summary>
internal static class Hostile
{
    /// <summary>Long enough for any honest operation on the small test images, short enough to call anything longer a hang.</summary>
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    /// <summary>Runs <paramref name="operation"/>; returns the refusal, or null if it succeeded.</summary>
    public static async Task<BlockException?> RunAsync(Func<Task> operation)
    {
        long allocatedBefore = GC.GetTotalAllocatedBytes();
        try
        {
            await operation().WaitAsync(Limit);
            return null;
        }
        catch (BlockException e)
        {
            return e;
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the operation did not finish in {Limit.TotalSeconds} s");
            throw;
        }
        finally
        {
            // Sizes read from the image must be bounded before use: nothing here needs a gigabyte.
            long allocated = GC.GetTotalAllocatedBytes() - allocatedBefore;
            Assert.True(allocated < 1L << 30, $"the operation allocated {allocated >> 20} MiB");
        }
    }

    /// <summary>Runs <paramref name="operation"/> and returns its refusal; fails if it succeeded.</summary>
    public static async Task<BlockException> RefusedAsync(Func<Task> operation) =>
        await RunAsync(operation) ?? throw new Xunit.Sdk.XunitException("the operation succeeded; a refusal was expected");
}
