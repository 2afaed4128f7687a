using Block.Drivers;

namespace Block.Rbd;

/// <summary>Registers the rbd protocol driver with a driver registry.</summary>
public static class RbdDriverRegistration
{
    /// <summary>Adds the <c>rbd</c> protocol driver to <paramref name="registry"/>.</summary>
    /// <remarks>Registering loads nothing: librados and librbd are loaded when the first rbd node opens or is created.</remarks>
    public static DriverRegistry AddRbd(this DriverRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return registry.Add(new RbdDriver());
    }
}
