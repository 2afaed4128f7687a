using Block.Crypto.Driver;
using Block.Drivers;

namespace Block.Crypto;

/// <summary>Registers Block.Crypto's drivers: <c>registry.AddLuks()</c>.</summary>
public static class LuksDriverRegistryExtensions
{
    /// <summary>Adds the <c>luks</c> format driver.</summary>
    public static DriverRegistry AddLuks(this DriverRegistry registry) => registry.Add(new LuksDriver());
}
