using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Block.Secrets;

/// <summary>
/// Secrets by id, as QEMU's <c>--object secret,id=…,data=…|file=…[,format=raw|base64]</c> defines them: the keys and
/// passphrases encrypted images are opened with.
/// </summary>
/// <remarks>
/// Values are held in arrays that are zeroed when a secret is removed or the store is disposed, and never
/// appear in messages or exceptions.
/// </remarks>
public sealed class SecretStore : IDisposable
{
    private readonly ConcurrentDictionary<string, byte[]> _secrets = new(StringComparer.Ordinal);

    /// <summary>Adds the secret <paramref name="id"/>; the store takes ownership of <paramref name="value"/>.</summary>
    /// <exception cref="BlockException">A secret with this id exists.</exception>
    public void Add(string id, byte[] value)
    {
        if (!_secrets.TryAdd(id, value))
            throw new BlockException(Errno.EEXIST, $"attempt to add duplicate property '{id}' to object (type 'container')");
    }

    /// <summary>Adds a secret from QEMU's object properties: <c>data</c> or <c>file</c>, and <c>format</c>.</summary>
    public void Add(string id, string? data, string? file, string? format)
    {
        if ((data is null) == (file is null))
            throw new BlockOptionsException(data is null ? "Either 'file' or 'data' must be provided" : "'data' and 'file' are mutually exclusive");
        byte[] raw = data != null ? System.Text.Encoding.UTF8.GetBytes(data) : ReadFile(file!);
        byte[] value = (format ?? "raw") switch
        {
            "raw" => raw,
            "base64" => DecodeBase64(raw),
            _ => throw new BlockOptionsException($"Parameter 'format' does not accept value '{format}'"),
        };
        if (!ReferenceEquals(value, raw))
            CryptographicOperations.ZeroMemory(raw);
        Add(id, value);
    }

    /// <summary>The secret <paramref name="id"/>, or null.</summary>
    /// <remarks>The null is typed: a bare <c>null</c> would convert through <c>byte[]</c> to an empty, non-null memory.</remarks>
    public ReadOnlyMemory<byte>? Find(string id) => _secrets.TryGetValue(id, out var v) ? v : (ReadOnlyMemory<byte>?)null;

    /// <summary>The secret <paramref name="id"/>.</summary>
    /// <exception cref="BlockNotFoundException">No such secret.</exception>
    public ReadOnlyMemory<byte> Get(string id) =>
        Find(id) ?? throw new BlockNotFoundException($"No secret with id '{id}'");

    /// <summary>Removes and wipes the secret <paramref name="id"/>.</summary>
    public bool Remove(string id)
    {
        if (!_secrets.TryRemove(id, out var v))
            return false;
        CryptographicOperations.ZeroMemory(v);
        return true;
    }

    /// <summary>Wipes every secret.</summary>
    public void Dispose()
    {
        foreach (var id in _secrets.Keys.ToList())
            Remove(id);
    }

    private static byte[] ReadFile(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (IOException e)
        {
            throw new BlockException(Errno.EIO, $"Unable to read {path}: {e.Message}");
        }
        catch (UnauthorizedAccessException)
        {
            throw new BlockException(Errno.EACCES, $"Unable to read {path}: Permission denied");
        }
    }

    private static byte[] DecodeBase64(byte[] text)
    {
        try
        {
            return Convert.FromBase64String(System.Text.Encoding.ASCII.GetString(text));
        }
        catch (FormatException)
        {
            throw new BlockOptionsException("Invalid base64 data");
        }
    }
}
