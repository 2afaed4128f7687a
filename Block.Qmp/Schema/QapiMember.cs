namespace Block.Qmp.Schema;

/// <summary>A member of an object type.</summary>
/// <param name="Name">The wire name (<c>node-name</c>, <c>backing_file</c>: as the schema spells it).</param>
/// <param name="Type">The member's type.</param>
/// <param name="Optional">True if the member may be absent (<c>'*name'</c> in the schema).</param>
public sealed record QapiMember(string Name, QapiType Type, bool Optional);
