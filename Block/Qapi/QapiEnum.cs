using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>
/// Maps a QAPI enum type to and from its wire names. The wire name of a member is its
/// <see cref="JsonStringEnumMemberNameAttribute"/>, so JSON serialization and option parsing agree by construction.
/// </summary>
/// <typeparam name="T">An enum whose members carry <see cref="JsonStringEnumMemberNameAttribute"/>.</typeparam>
public static class QapiEnum<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicFields)] T>
    where T : struct, Enum
{
    private static readonly FrozenDictionary<string, T> s_byName;
    private static readonly FrozenDictionary<T, string> s_byValue;

    static QapiEnum()
    {
        var byName = new Dictionary<string, T>(StringComparer.Ordinal);
        var byValue = new Dictionary<T, string>();
        foreach (var field in typeof(T).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            var value = (T)field.GetValue(null)!;
            string name = field.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name ?? field.Name.ToLowerInvariant();
            byName[name] = value;
            byValue[value] = name;
        }
        s_byName = byName.ToFrozenDictionary(StringComparer.Ordinal);
        s_byValue = byValue.ToFrozenDictionary();
        Names = [.. byValue.Values];
    }

    /// <summary>All wire names, in declaration order.</summary>
    public static IReadOnlyList<string> Names { get; }

    /// <summary>The wire name of <paramref name="value"/>.</summary>
    public static string ToWire(T value) => s_byValue[value];

    /// <summary>Parses a wire name.</summary>
    public static bool TryParse(string wire, out T value) => s_byName.TryGetValue(wire, out value);
}
