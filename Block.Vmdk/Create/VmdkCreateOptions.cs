using Block.Drivers;
using Block.Vmdk.Descriptor;

namespace Block.Vmdk.Create;

/// <summary>
/// <c>qemu-img create -f vmdk -o …</c>: the options qemu-img 7.2 takes, read and checked with its messages.
/// </summary>
public sealed record VmdkCreateOptions
{
    /// <summary>The option list, in the order <c>Formatting …</c> prints them.</summary>
    public static IReadOnlyList<CreateOptionDescriptor> Descriptors { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
        new("adapter_type", CreateOptionType.String, "Virtual adapter type, can be one of ide (default), lsilogic, buslogic or legacyESX"),
        new("backing_file", CreateOptionType.String, "File name of a base image"),
        new("backing_fmt", CreateOptionType.String, "Must be 'vmdk' if present"),
        new("compat6", CreateOptionType.Bool, "VMDK version 6 image", "off"),
        new("hwversion", CreateOptionType.String, "VMDK hardware version", "undefined"),
        new("toolsversion", CreateOptionType.String, "VMware guest tools version"),
        new("subformat", CreateOptionType.String,
            "VMDK flat extent format, can be one of {monolithicSparse (default) | monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized} "),
        new("zeroed_grain", CreateOptionType.Bool, "Enable efficient zero writes using the zeroed-grain GTE feature"),
    ];

    /// <summary>The disk's size in bytes (rounded up to whole sectors when laid out); null to take the backing image's.</summary>
    public long? Size { get; init; }

    /// <summary><c>ddb.adapterType</c>: ide, lsilogic, buslogic or legacyESX.</summary>
    public string AdapterType { get; init; } = "ide";

    /// <summary>The parent image (<c>parentFileNameHint</c>), as given.</summary>
    public string? BackingFile { get; init; }

    /// <summary><c>ddb.virtualHWVersion</c>.</summary>
    public string HardwareVersion { get; init; } = "4";

    /// <summary><c>ddb.toolsVersion</c>.</summary>
    public string ToolsVersion { get; init; } = "2147483647";

    /// <summary>The subformat (<c>createType</c>).</summary>
    public string Subformat { get; init; } = VmdkCreateType.MonolithicSparse;

    /// <summary>True to enable zeroed-grain entries (version 2 sparse extents).</summary>
    public bool ZeroedGrain { get; init; }

    /// <summary>True for the subformats whose data lives in flat extents.</summary>
    public bool IsFlat => Subformat is VmdkCreateType.MonolithicFlat or VmdkCreateType.TwoGbMaxExtentFlat;

    /// <summary>Reads and checks the options of <paramref name="request"/>.</summary>
    /// <exception cref="BlockOptionsException">A value qemu-img refuses, with its message.</exception>
    public static VmdkCreateOptions Read(ImageCreateRequest request)
    {
        ulong? size = request.Size;
        string adapter = request.GetString("adapter_type") ?? "ide";
        string? backing = request.GetString("backing_file");
        string? backingFormat = request.GetString("backing_fmt");
        bool compat6 = request.GetBool("compat6") ?? false;
        string? hwversion = request.GetString("hwversion");
        string? toolsversion = request.GetString("toolsversion");
        string subformat = request.GetString("subformat") ?? VmdkCreateType.MonolithicSparse;
        bool zeroed = request.GetBool("zeroed_grain") ?? false;

        if (adapter is not ("ide" or "lsilogic" or "buslogic" or "legacyESX"))
            throw new BlockOptionsException($"invalid parameter value: {adapter}");
        if (!VmdkCreateType.Creatable.Contains(subformat))
            throw new BlockOptionsException($"invalid parameter value: {subformat}");
        if (compat6 && hwversion is not null and not "undefined")
            throw new BlockOptionsException("compat6 cannot be enabled with hwversion set");
        if (backingFormat is not null && backingFormat != "vmdk")
            throw new BlockOptionsException("backing_file must be a vmdk image");
        var options = new VmdkCreateOptions
        {
            Size = size is { } s ? (long)Math.Min(s, (ulong)long.MaxValue) : null,
            AdapterType = adapter,
            BackingFile = string.IsNullOrEmpty(backing) ? null : backing,
            HardwareVersion = hwversion is null or "undefined" ? compat6 ? "6" : "4" : hwversion,
            ToolsVersion = toolsversion ?? "2147483647",
            Subformat = subformat,
            ZeroedGrain = zeroed,
        };
        if (options.IsFlat && options.BackingFile != null)
            throw new BlockOptionsException("Flat image can't have backing file");
        if (options.IsFlat && zeroed)
            throw new BlockOptionsException("Flat image can't enable zeroed grain");
        return options;
    }
}
