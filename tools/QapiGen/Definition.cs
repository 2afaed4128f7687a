namespace Block.Tools.QapiGen;

/// <summary>
/// One entity of the desugared schema, as the generated table records it. Type references are names: a builtin, a
/// defined type, or <c>[T]</c> for an array of <c>T</c>.
/// </summary>
/// <remarks>
/// Desugared as QEMU models its schema internally: an inline argument or base object becomes an implicit struct
/// (<c>q_obj_NAME-arg</c>, <c>q_obj_NAME-base</c>), and a simple union becomes a flat one over an implicit enum
/// (<c>NAMEKind</c>) whose branches are implicit wrapper structs with one member <c>data</c>
/// (<c>q_obj_TYPE-wrapper</c>). The runtime then knows only structs, flat unions, enums, alternates and arrays.
/// </remarks>
internal abstract record Definition(string Name, bool Implicit);

/// <summary>An enum and its values in order.</summary>
internal sealed record EnumDefinition(string Name, bool Implicit, IReadOnlyList<string> Values) : Definition(Name, Implicit);

/// <summary>A member of a struct: its wire name, type and whether it may be absent.</summary>
internal sealed record MemberDefinition(string Name, string Type, bool Optional);

/// <summary>A struct: an optional base struct whose members come first, then its own members.</summary>
internal sealed record StructDefinition(string Name, bool Implicit, string? Base, IReadOnlyList<MemberDefinition> Members)
    : Definition(Name, Implicit);

/// <summary>A flat union: the base struct's members, then the members of the branch the tag member selects.</summary>
internal sealed record UnionDefinition(string Name, string Base, string Tag, IReadOnlyList<KeyValuePair<string, string>> Variants)
    : Definition(Name, false);

/// <summary>An alternate: a value of any one of the branch types, told apart by its JSON type.</summary>
internal sealed record AlternateDefinition(string Name, IReadOnlyList<KeyValuePair<string, string>> Branches) : Definition(Name, false);

/// <summary>A command: argument type (null: none), return type (null: an empty object) and flags.</summary>
/// <param name="Name">The command name.</param>
/// <param name="Arguments">The argument struct (or, when boxed, any object type).</param>
/// <param name="Returns">The return type.</param>
/// <param name="Boxed">The handler takes the argument object as one value.</param>
/// <param name="Gen">False if QEMU does not generate the command's marshalling ('gen': false).</param>
/// <param name="SuccessResponse">False if the command sends no reply on success.</param>
internal sealed record CommandDefinition(string Name, string? Arguments, string? Returns, bool Boxed, bool Gen, bool SuccessResponse)
    : Definition(Name, false);

/// <summary>An event and its data type (null: none).</summary>
internal sealed record EventDefinition(string Name, string? Data, bool Boxed) : Definition(Name, false);
