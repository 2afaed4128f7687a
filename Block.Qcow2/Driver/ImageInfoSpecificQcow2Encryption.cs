using System.Text.Json;
using Block.Crypto.Qapi;

namespace Block.Qcow2.Driver;

/// <summary>
/// QAPI <c>ImageInfoSpecificQCow2Encryption</c>: qcow2's <c>encrypt</c> member in <c>qemu-img info</c>, the format and,
/// for LUKS, the volume's <see cref="LuksInfo"/>.
/// </summary>
/// <param name="Format">"aes" or "luks".</param>
/// <param name="Luks">The LUKS volume's information (luks only).</param>
public sealed record ImageInfoSpecificQcow2Encryption(string Format, LuksInfo? Luks)
{
    /// <summary>Writes the members into the object <paramref name="writer"/> is in: the format first, as the union's discriminator.</summary>
    public void WriteMembers(Utf8JsonWriter writer)
    {
        writer.WriteString("format", Format);
        Luks?.WriteMembers(writer);
    }
}
