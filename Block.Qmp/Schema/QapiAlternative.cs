namespace Block.Qmp.Schema;

/// <summary>A branch of an alternate.</summary>
/// <param name="Name">The branch's name in the schema (<c>definition</c>, <c>reference</c>).</param>
/// <param name="Type">The type a value of this branch has.</param>
public sealed record QapiAlternative(string Name, QapiType Type);
