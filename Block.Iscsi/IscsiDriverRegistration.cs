using Block.Drivers;

namespace Block.Iscsi;

/// <summary>Registers the iscsi protocol driver with a driver registry.</summary>
public static class IscsiDriverRegistration
{
    /// <summary>Adds the <c>iscsi</c> protocol driver to <paramref name="registry"/>.</summary>
    /// <remarks>Registering loads nothing: libiscsi is loaded when the first iscsi node opens.</remarks>
    public static DriverRegistry AddIscsi(this DriverRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        registry.Add(new IscsiDriver());
        return registry;
    }
}
