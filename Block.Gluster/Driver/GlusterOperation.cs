namespace Block.Gluster.Driver;

/// <summary>What a <see cref="GlusterRequest"/> asks gfapi to do, each through its <c>glfs_*_async</c> call.</summary>
internal enum GlusterOperation
{
    Read,
    Write,
    Fsync,
    Discard,
    Zerofill,
}
