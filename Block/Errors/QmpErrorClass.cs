namespace Block;

/// <summary>The QMP error classes of the schema's era (<c>{"error": {"class": …}}</c>).</summary>
public enum QmpErrorClass
{
    /// <summary>Almost every error.</summary>
    GenericError,
    /// <summary>The command does not exist or is not allowed in the current mode.</summary>
    CommandNotFound,
    /// <summary>A block device (backend) was not found by name.</summary>
    DeviceNotFound,
    /// <summary>A job was not found on the device.</summary>
    DeviceNotActive,
    /// <summary>The medium is encrypted and no key was given.</summary>
    DeviceEncrypted,
}
