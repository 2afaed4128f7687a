namespace Block;

/// <summary>
/// The one exception family of the block layer. Every failure carries an <see cref="Errno"/> (what a guest or a
/// request sees) and a <see cref="QmpErrorClass"/> (what a QMP client sees).
/// </summary>
/// <remarks>
/// QEMU returns <c>-errno</c> from its request functions and fills an <c>Error</c> object with a message elsewhere;
/// one exception that carries both keeps the two in step, so the CLI can print qemu-io's
/// "<c>read failed: Input/output error</c>" and the QMP adapter the descriptive message.
/// </remarks>
public class BlockException : Exception
{
    /// <summary>Creates an exception with an errno and a message.</summary>
    public BlockException(Errno errno, string message, Exception? inner = null)
        : base(message, inner)
    {
        Errno = errno;
    }

    /// <summary>The errno a request that failed this way returns.</summary>
    public Errno Errno { get; }

    /// <summary>The QMP error class.</summary>
    public virtual QmpErrorClass ErrorClass => QmpErrorClass.GenericError;
}

/// <summary>A malformed image: a structure read from disk is invalid. The message names the structure and offset.</summary>
public class ImageFormatException : BlockException
{
    /// <summary>Creates the exception.</summary>
    public ImageFormatException(string message, Errno errno = Errno.EINVAL, Exception? inner = null)
        : base(errno, message, inner)
    {
    }
}

/// <summary>An option (QMP argument, keyval string, <c>json:</c> file name or <c>-o</c> value) is unknown or ill-typed.</summary>
public sealed class BlockOptionsException : BlockException
{
    /// <summary>Creates the exception; <paramref name="message"/> names the option.</summary>
    public BlockOptionsException(string message)
        : base(Errno.EINVAL, message)
    {
    }
}

/// <summary>A name lookup failed: a device (backend), node, or job that does not exist.</summary>
public sealed class BlockNotFoundException : BlockException
{
    private readonly QmpErrorClass _class;

    /// <summary>Creates the exception with the QMP class the lookup reports.</summary>
    public BlockNotFoundException(string message, QmpErrorClass errorClass = QmpErrorClass.GenericError)
        : base(Errno.ENOENT, message)
    {
        _class = errorClass;
    }

    /// <inheritdoc />
    public override QmpErrorClass ErrorClass => _class;
}

/// <summary>
/// An encrypted image still waits for its key (QEMU 2.8's <c>'NAME' (FILE) is encrypted</c>, class DeviceEncrypted):
/// <c>cont</c> refuses to run until <c>block_passwd</c> gives it.
/// </summary>
public sealed class DeviceEncryptedException : BlockException
{
    /// <summary>Creates the exception naming the device or node and its encrypted file.</summary>
    public DeviceEncryptedException(string name, string filename)
        : base(Errno.EACCES, $"'{name}' ({filename}) is encrypted")
    {
    }

    /// <inheritdoc />
    public override QmpErrorClass ErrorClass => QmpErrorClass.DeviceEncrypted;
}
