namespace Block.Qmp.Schema;

/// <summary>The flags a command's schema entry can carry, as the generated table writes them.</summary>
[Flags]
internal enum QapiCommandFlags
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary><c>'boxed': true</c>: the argument type is passed as one object (and may be a union).</summary>
    Boxed = 1,
    /// <summary><c>'gen': false</c>: QEMU writes the command's marshalling by hand.</summary>
    NoGen = 2,
    /// <summary><c>'success-response': false</c>: no reply on success.</summary>
    NoSuccessResponse = 4,
}
