namespace Block.Qmp.Schema;

/// <summary>A branch of a flat union: the tag value that selects it and the struct whose members it adds.</summary>
/// <param name="Case">The tag value.</param>
/// <param name="Type">The branch's struct.</param>
public sealed record QapiVariant(string Case, QapiObjectType Type);
