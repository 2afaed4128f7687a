namespace Block.Formats.Vpc;

/// <summary>How a VHD's disk size is derived from its footer (QEMU's <c>force_size_calc</c>).</summary>
internal enum VpcSizeRule
{
    /// <summary>By the creator application: the footer's size for Hyper-V, Disk2VHD, XenServer and <c>qem2</c>, else C·H·S.</summary>
    ByCreator,

    /// <summary>C·H·S (<c>force_size_calc=chs</c>).</summary>
    Chs,

    /// <summary>The footer's current size (<c>force_size_calc=current_size</c>).</summary>
    CurrentSize,
}
