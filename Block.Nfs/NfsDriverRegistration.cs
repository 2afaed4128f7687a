using Block.Drivers;

namespace Block.Nfs;

/// <summary>Registers the nfs protocol driver with a driver registry.</summary>
public static class NfsDriverRegistration
{
    /// <summary>Adds the <c>nfs</c> protocol driver to <paramref name="registry"/>.</summary>
    /// <remarks>Registering loads nothing: libnfs is loaded when the first nfs node opens.</remarks>
    public static DriverRegistry AddNfs(this DriverRegistry registry, NfsDriverOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.Add(new NfsDriver(options));
        return registry;
    }
}
