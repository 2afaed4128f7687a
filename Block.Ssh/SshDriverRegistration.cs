using Block.Drivers;

namespace Block.Ssh;

/// <summary>Registers the ssh protocol driver with a driver registry.</summary>
public static class SshDriverRegistration
{
    /// <summary>Adds the <c>ssh</c> protocol driver to <paramref name="registry"/>, with the environment's agent and known_hosts unless <paramref name="options"/> names others.</summary>
    public static DriverRegistry AddSsh(this DriverRegistry registry, SshDriverOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return registry.Add(new SshDriver(options));
    }
}
