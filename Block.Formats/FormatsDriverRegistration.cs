using Block.Drivers;
using Block.Formats.Bochs;
using Block.Formats.Vdi;

namespace Block.Formats;

/// <summary>Registers the formats of this package with a driver registry.</summary>
public static class FormatsDriverRegistration
{
    /// <summary>Adds every format driver of this package to <paramref name="registry"/>: <c>vdi</c>, <c>bochs</c>.</summary>
    public static DriverRegistry AddFormats(this DriverRegistry registry) => registry.AddVdi().AddBochs();

    /// <summary>Adds the <c>vdi</c> format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddVdi(this DriverRegistry registry) => registry.Add(new VdiDriver());

    /// <summary>Adds the read-only <c>bochs</c> format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddBochs(this DriverRegistry registry) => registry.Add(new BochsDriver());
}
