using System.Net.Security;
using Block.Graph;

namespace Block.Nbd.Client;

/// <summary>The TLS settings of an NBD client node, from the <c>tls-creds</c> object its options name.</summary>
internal static class NbdTls
{
    /// <summary>Null without <c>tls-creds</c>.</summary>
    /// <exception cref="BlockException">No such object, with QEMU's message.</exception>
    public static SslClientAuthenticationOptions? ClientOptions(BlockGraph graph, BlockdevOptionsNbd options)
    {
        if (options.TlsCreds is not { } id)
            return null;
        throw new BlockException(Errno.ENOENT, $"No TLS credentials with id '{id}'");
    }
}
