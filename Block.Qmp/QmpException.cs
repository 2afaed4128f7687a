namespace Block.Qmp;

/// <summary>A QMP-level failure with an explicit error class (<c>CommandNotFound</c> and the like).</summary>
/// <remarks>
/// Library failures already carry their class (<see cref="BlockException.ErrorClass"/>); this type is for what only
/// the protocol knows: an unknown command, a command before capabilities negotiation, a malformed request.
/// </remarks>
public sealed class QmpException : BlockException
{
    /// <summary>Creates the exception.</summary>
    public QmpException(QmpErrorClass errorClass, string message)
        : base(Errno.EINVAL, message)
    {
        ErrorClassValue = errorClass;
    }

    private QmpErrorClass ErrorClassValue { get; }

    /// <inheritdoc />
    public override QmpErrorClass ErrorClass => ErrorClassValue;
}
