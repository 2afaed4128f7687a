using System.Text.Json;
using Block.Qapi;

namespace Block.Crypto.Qapi;

/// <summary>The <c>luks</c> branch of QAPI <c>ImageInfoSpecific</c>: a raw LUKS image's <see cref="LuksInfo"/>.</summary>
/// <param name="Info">The volume's information.</param>
public sealed record ImageInfoSpecificLuks(LuksInfo Info) : ImageInfoSpecific
{
    /// <inheritdoc />
    public override string Type => "luks";

    /// <inheritdoc />
    public override void WriteData(Utf8JsonWriter writer) => Info.WriteMembers(writer);
}
