namespace Block.Fuzz.Targets;

/// <summary>Every target, by name.</summary>
public static class FuzzTargets
{
    /// <summary>All targets.</summary>
    public static IReadOnlyList<IFuzzTarget> All { get; } = [new OptionsTarget(), new JsonFilenameTarget(), new SizeTarget(), new VmdkDescriptorTarget(), new VmdkImageTarget(), new FormatImageTarget("vdi"), new FormatImageTarget("vpc"), new FormatImageTarget("vhdx", sparseInput: true), new FormatImageTarget("qed"), new FormatImageTarget("qcow"), new FormatImageTarget("parallels"), new FormatImageTarget("bochs", readOnly: true), new FormatImageTarget("cloop", readOnly: true), new FormatImageTarget("dmg", readOnly: true), new LuksHeaderTarget(), new Qcow2Target(), new QmpTarget(), new NbdServerTarget(), new NbdClientTarget()];

    /// <summary>The target named <paramref name="name"/>, or null.</summary>
    public static IFuzzTarget? Find(string name) => All.FirstOrDefault(t => t.Name == name);

    /// <summary>Runs <paramref name="target"/> on <paramref name="input"/>, swallowing the refusals it is allowed to make.</summary>
    public static void RunOne(IFuzzTarget target, ReadOnlySpan<byte> input)
    {
        try
        {
            target.Run(input);
        }
        catch (BlockException)
        {
        }
    }
}
