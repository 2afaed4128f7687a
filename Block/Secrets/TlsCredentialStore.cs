using System.Collections.Concurrent;

namespace Block.Secrets;

/// <summary>The graph's <c>tls-creds-x509</c> objects by id, which NBD clients and servers name in <c>tls-creds</c>.</summary>
public sealed class TlsCredentialStore
{
    private readonly ConcurrentDictionary<string, TlsCredentials> _credentials = new(StringComparer.Ordinal);

    /// <summary>Adds <paramref name="credentials"/> after checking its files.</summary>
    /// <exception cref="BlockException">A file is missing, or an object with this id exists.</exception>
    public void Add(TlsCredentials credentials)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        credentials.Validate();
        if (!_credentials.TryAdd(credentials.Id, credentials))
            throw new BlockException(Errno.EEXIST, $"attempt to add duplicate property '{credentials.Id}' to object (type 'container')");
    }

    /// <summary>The credentials <paramref name="id"/>, or null.</summary>
    public TlsCredentials? Find(string id) => _credentials.GetValueOrDefault(id);

    /// <summary>Removes the credentials <paramref name="id"/>.</summary>
    public bool Remove(string id) => _credentials.TryRemove(id, out _);
}
