using Block.Graph;

namespace Block.TestSupport;

/// <summary>A graph for one test; disposing it closes every node.</summary>
public sealed class TestGraph(BlockGraph graph) : IDisposable
{
    public BlockGraph Graph { get; } = graph;

    public void Dispose() => Graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
}
