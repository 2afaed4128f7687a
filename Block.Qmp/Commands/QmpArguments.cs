using System.Text.Json;
using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Qmp.Commands;

/// <summary>
/// Typed reads of a command's arguments, with QEMU 7.2's texts for missing and ill-typed members (a second line of
/// defence: the schema has checked them already when the command is registered to be checked).
/// </summary>
public static class QmpArguments
{
    /// <summary>A required string member.</summary>
    public static string RequiredString(this JsonObject arguments, string name) =>
        arguments.OptionalString(name) ?? throw Missing(name);

    /// <summary>An optional string member.</summary>
    public static string? OptionalString(this JsonObject arguments, string name) => arguments[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        _ => throw WrongType(name, "string"),
    };

    /// <summary>A required integer member.</summary>
    public static long RequiredInt64(this JsonObject arguments, string name) =>
        arguments.OptionalInt64(name) ?? throw Missing(name);

    /// <summary>An optional integer member.</summary>
    public static long? OptionalInt64(this JsonObject arguments, string name) => arguments[name] switch
    {
        null => null,
        JsonValue v when JsonNumbers.TryGetInt64(v, out long l) => l,
        _ => throw WrongType(name, "integer"),
    };

    /// <summary>A required unsigned 64-bit member (the schema's <c>uint64</c> and <c>size</c>).</summary>
    public static ulong RequiredUInt64(this JsonObject arguments, string name) => arguments[name] switch
    {
        null => throw Missing(name),
        JsonValue v when JsonNumbers.TryGetUInt64(v, out ulong u) => u,
        _ => throw WrongType(name, "integer"),
    };

    /// <summary>An optional boolean member.</summary>
    public static bool? OptionalBool(this JsonObject arguments, string name) => arguments[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.True => true,
        JsonValue v when v.GetValueKind() == JsonValueKind.False => false,
        _ => throw WrongType(name, "boolean"),
    };

    private static BlockOptionsException Missing(string name) => new($"Parameter '{name}' is missing");

    private static BlockOptionsException WrongType(string name, string expected) =>
        new($"Invalid parameter type for '{name}', expected: {expected}");
}
