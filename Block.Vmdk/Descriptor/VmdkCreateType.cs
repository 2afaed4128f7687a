namespace Block.Vmdk.Descriptor;

/// <summary>The <c>createType</c> values (VMDK "subformats") and what each allows.</summary>
public static class VmdkCreateType
{
    /// <summary>One sparse file with the descriptor embedded (the default).</summary>
    public const string MonolithicSparse = "monolithicSparse";

    /// <summary>A descriptor file and one flat extent (<c>name-flat.vmdk</c>).</summary>
    public const string MonolithicFlat = "monolithicFlat";

    /// <summary>A descriptor file and sparse extents of at most 2 GiB (<c>name-s001.vmdk</c>…).</summary>
    public const string TwoGbMaxExtentSparse = "twoGbMaxExtentSparse";

    /// <summary>A descriptor file and flat extents of at most 2 GiB (<c>name-f001.vmdk</c>…).</summary>
    public const string TwoGbMaxExtentFlat = "twoGbMaxExtentFlat";

    /// <summary>One sparse file of compressed grains with markers, written sequentially.</summary>
    public const string StreamOptimized = "streamOptimized";

    /// <summary>ESX flat disk.</summary>
    public const string Vmfs = "vmfs";

    /// <summary>ESX sparse (COWD) snapshot.</summary>
    public const string VmfsSparse = "vmfsSparse";

    /// <summary>ESXi space-efficient sparse snapshot.</summary>
    public const string SeSparse = "seSparse";

    /// <summary>The subformats <c>qemu-img create</c> can make, in the order its help lists them.</summary>
    public static IReadOnlyList<string> Creatable { get; } =
        [MonolithicSparse, MonolithicFlat, TwoGbMaxExtentSparse, TwoGbMaxExtentFlat, StreamOptimized];

    /// <summary>True for the create types a separate descriptor file may declare (the embedded ones live in a sparse header).</summary>
    public static bool IsDescriptorFileType(string createType) => createType is MonolithicFlat or TwoGbMaxExtentFlat
        or TwoGbMaxExtentSparse or Vmfs or VmfsSparse or SeSparse;
}
