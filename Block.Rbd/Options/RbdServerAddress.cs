namespace Block.Rbd.Options;

/// <summary>One monitor of QAPI <c>BlockdevOptionsRbd.server</c> (an <c>InetSocketAddressBase</c>).</summary>
/// <param name="Host">The monitor's host name or address.</param>
/// <param name="Port">The monitor's port (a number or a service name, as QAPI has it).</param>
public sealed record RbdServerAddress(string Host, string Port);
