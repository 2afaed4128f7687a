using Block.Vmdk.Descriptor;
using Block.Vmdk.Format;

namespace Block.Fuzz.Targets;

/// <summary>VMDK descriptor text and the sparse and COWD headers: parsing, probing, CID rewriting and header checks.</summary>
public sealed class VmdkDescriptorTarget : IFuzzTarget
{
    /// <inheritdoc />
    public string Name => "vmdk-descriptor";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input)
    {
        _ = VmdkDescriptor.LooksLikeDescriptor(input);
        var descriptor = VmdkDescriptor.Parse(input);
        var again = VmdkDescriptor.Parse(descriptor.WithCid(descriptor.Cid ^ 0x5a5a5a5a));
        if (again.Extents.Count != descriptor.Extents.Count || again.CreateType != descriptor.CreateType)
            throw new InvalidOperationException("Rewriting the CID changed what the descriptor says");
        if (SparseExtentHeader.HasMagic(input) && input.Length >= SparseExtentHeader.Size)
            SparseExtentHeader.Parse(input).Validate(input.Length, readOnly: true);
        if (CowdHeader.HasMagic(input) && input.Length >= 32)
            CowdHeader.Parse(input).Validate(input.Length);
    }
}
