using Block.Drivers;

namespace Block.Gluster;

/// <summary>Registers the gluster protocol driver with a driver registry.</summary>
public static class GlusterDriverRegistration
{
    /// <summary>Adds the <c>gluster</c> protocol driver to <paramref name="registry"/>.</summary>
    /// <remarks>Registering loads nothing: libgfapi is loaded when the first gluster node opens.</remarks>
    public static DriverRegistry AddGluster(this DriverRegistry registry, GlusterDriverOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.Add(new GlusterDriver(options));
        return registry;
    }
}
