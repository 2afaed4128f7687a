namespace Block.Nfs.Driver;

/// <summary>What an <see cref="NfsRequest"/> asks libnfs to do.</summary>
internal enum NfsOperation
{
    Mount,
    Umount,
    Open,
    Create,
    Close,
    Stat,
    Read,
    Write,
    Fsync,
    Truncate,
}
