using Block.Drivers;
using Block.Qapi;

namespace Block.Crypto.Luks;

/// <summary>QEMU's wording for enum options of <c>qemu-img create</c>.</summary>
internal static class ImageCreateRequestExtensions
{
    /// <summary>
    /// Reads the QAPI enum option <paramref name="prefix"/> + <paramref name="name"/>, failing with <c>Parameter 'name'
    /// does not accept value 'y'</c> as QEMU does.
    /// </summary>
    public static T? GetEnumValue<[System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.PublicFields)] T>(
        this ImageCreateRequest request, string prefix, string name)
        where T : struct, Enum
    {
        string? text = request.GetString(prefix + name);
        if (text is null)
            return null;
        if (QapiEnum<T>.TryParse(text, out var value))
            return value;
        throw new BlockOptionsException($"Parameter '{name}' does not accept value '{text}'");
    }
}
