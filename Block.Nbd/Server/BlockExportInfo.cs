namespace Block.Nbd.Server;

/// <summary>One block export as <c>query-block-exports</c> shows it (QEMU 7.2's <c>BlockExportInfo</c>, type nbd).</summary>
/// <param name="Id">The export id.</param>
/// <param name="NodeName">The node it exports (the drive or node name it was added with).</param>
/// <param name="ShuttingDown">True between a removal and the moment its last client is gone.</param>
public sealed record BlockExportInfo(string Id, string NodeName, bool ShuttingDown);
