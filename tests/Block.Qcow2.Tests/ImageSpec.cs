namespace Block.Qcow2.Tests;

/// <summary>One combination of qcow2 creation options, as <c>qemu-img create -o</c> spells them.</summary>
public sealed record ImageSpec(int ClusterSize, string Compat, int RefcountBits, bool ExtendedL2, string Compression)
{
    /// <summary>Version 3 (<c>compat=1.1</c>).</summary>
    public bool IsV3 => Compat == "1.1";

    /// <summary>Bytes per subcluster: 1/32 of a cluster with extended L2, else the cluster.</summary>
    public int SubclusterSize => ExtendedL2 ? ClusterSize / 32 : ClusterSize;

    /// <summary>The <c>-o</c> string, naming only what differs from qemu-img's defaults besides compat and cluster size.</summary>
    public string CreateOptions(string? extra = null)
    {
        var o = new List<string> { $"compat={Compat}", $"cluster_size={ClusterSize}" };
        if (RefcountBits != 16)
            o.Add($"refcount_bits={RefcountBits}");
        if (ExtendedL2)
            o.Add("extended_l2=on");
        if (Compression != "zlib")
            o.Add($"compression_type={Compression}");
        if (extra != null)
            o.Add(extra);
        return string.Join(',', o);
    }

    /// <summary>Readable in test names: <c>cs=65536 compat=1.1 rb=16 el2=on zstd</c>.</summary>
    public override string ToString() =>
        $"cs={ClusterSize} compat={Compat} rb={RefcountBits} el2={(ExtendedL2 ? "on" : "off")} {Compression}";
}
