using Block.Drivers;
using Block.Formats.Qed;
using Block.Formats.Qcow;
using Block.Formats.Bochs;
using Block.Formats.Cloop;
using Block.Formats.Dmg;
using Block.Formats.Parallels;
using Block.Formats.Vdi;
using Block.Formats.Vpc;
using Block.Formats.Vhdx;

namespace Block.Formats;

/// <summary>Registers the formats of this package with a driver registry.</summary>
public static class FormatsDriverRegistration
{
    /// <summary>Adds every format driver of this package to <paramref name="registry"/>: <c>vdi</c>, <c>vpc</c>, <c>vhdx</c>, <c>qed</c>, <c>qcow</c>, <c>parallels</c>, <c>bochs</c>, <c>cloop</c>, <c>dmg</c>.</summary>
    public static DriverRegistry AddFormats(this DriverRegistry registry) => registry.AddVdi().AddVpc().AddVhdx().AddQed().AddQcow().AddParallels().AddBochs().AddCloop().AddDmg();

    /// <summary>Adds the <c>vdi</c> format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddVdi(this DriverRegistry registry) => registry.Add(new VdiDriver());

    /// <summary>Adds the <c>vpc</c> (VHD) format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddVpc(this DriverRegistry registry) => registry.Add(new VpcDriver());

    /// <summary>Adds the <c>vhdx</c> format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddVhdx(this DriverRegistry registry) => registry.Add(new VhdxDriver());

    /// <summary>Adds the <c>qed</c> format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddQed(this DriverRegistry registry) => registry.Add(new QedDriver());

    /// <summary>Adds the <c>qcow</c> (version 1) format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddQcow(this DriverRegistry registry) => registry.Add(new QcowDriver());

    /// <summary>Adds the <c>parallels</c> format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddParallels(this DriverRegistry registry) => registry.Add(new ParallelsDriver());

    /// <summary>Adds the read-only <c>bochs</c> format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddBochs(this DriverRegistry registry) => registry.Add(new BochsDriver());

    /// <summary>Adds the read-only <c>cloop</c> format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddCloop(this DriverRegistry registry) => registry.Add(new CloopDriver());

    /// <summary>Adds the read-only <c>dmg</c> format driver to <paramref name="registry"/>.</summary>
    public static DriverRegistry AddDmg(this DriverRegistry registry) => registry.Add(new DmgDriver());
}
