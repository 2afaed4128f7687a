using Block.Drivers;

namespace Block.Nbd.Client;

/// <summary>Registers the NBD client driver with a driver registry.</summary>
public static class NbdDriverRegistration
{
    /// <summary>Adds the <c>nbd</c> protocol driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddNbd(this DriverRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return registry.Add(new NbdDriver());
    }
}
