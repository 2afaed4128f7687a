namespace Block.Iscsi.Session;

/// <summary>The SCSI commands a node sends.</summary>
internal enum IscsiCommandKind
{
    /// <summary>READ(16) into the request's buffers.</summary>
    Read,

    /// <summary>WRITE(16) from the request's buffers.</summary>
    Write,

    /// <summary>SYNCHRONIZE CACHE(10) of the whole LUN.</summary>
    Flush,

    /// <summary>UNMAP of one extent.</summary>
    Unmap,

    /// <summary>WRITE SAME(16) of a zero block, with the UNMAP bit when asked.</summary>
    WriteZeroes,

    /// <summary>GET LBA STATUS from one LBA.</summary>
    LbaStatus,
}
