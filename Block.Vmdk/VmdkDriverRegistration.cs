using Block.Drivers;

namespace Block.Vmdk;

/// <summary>Registers the VMDK format with a driver registry.</summary>
public static class VmdkDriverRegistration
{
    /// <summary>Adds the <c>vmdk</c> format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddVmdk(this DriverRegistry registry) => registry.Add(new VmdkDriver());
}
