using Block.Options;

namespace Block.Crypto.Driver;

/// <summary>QAPI <c>BlockdevOptionsLUKS</c> (QEMU 7.2): the <c>luks</c> format over its <c>file</c> child, unlocked with a secret.</summary>
public sealed record BlockdevOptionsLuks : BlockdevOptions
{
    /// <summary>Creates options for the <c>luks</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsLuks()
    {
        Driver = "luks";
        File = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The file child holding the header, the key material and the payload.</summary>
    public required BlockdevRef File { get; init; }

    /// <summary>The id of the secret (<see cref="Block.Secrets.SecretStore"/>) holding the passphrase of a key slot.</summary>
    public string? KeySecret { get; init; }

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences => [new("file", File)];
}
