namespace Block.Drivers;

/// <summary>
/// What <c>qemu-img amend</c> (QMP <c>x-blockdev-amend</c>) asks of an open image: <c>-o</c> options to change, as
/// text, with the typed reads of <see cref="ImageCreateRequest"/> so that bad values are reported the same way.
/// </summary>
/// <param name="options">The options, as given (the caller has checked their names against
/// <see cref="BlockDriver.AmendOptions"/>).</param>
public sealed class ImageAmendRequest(IReadOnlyDictionary<string, string> options)
{
    /// <summary>All options, as given.</summary>
    public IReadOnlyDictionary<string, string> Options { get; } = options;

    /// <summary>Allow changes that may lose data (QEMU's <c>--force</c>: erasing the last LUKS keyslot).</summary>
    public bool Force { get; init; }

    /// <summary>
    /// Called as the work progresses with the work done and the total work (QEMU's <c>BlockDriverAmendStatusCB</c>);
    /// the units are the driver's, only their ratio means something.
    /// </summary>
    public Action<long, long>? Progress { get; init; }

    /// <summary>True if <paramref name="name"/> was given.</summary>
    public bool Has(string name) => Options.ContainsKey(name);

    /// <summary>Reads a text option.</summary>
    public string? GetString(string name) => Options.TryGetValue(name, out var v) ? v : null;

    /// <summary>Reads an <c>on</c>/<c>off</c> option.</summary>
    public bool? GetBool(string name) => ImageCreateRequest.ParseBool(name, GetString(name));

    /// <summary>Reads a size option (<c>64k</c>).</summary>
    public ulong? GetSize(string name) => ImageCreateRequest.ParseSize(name, GetString(name));

    /// <summary>Reads an integer option.</summary>
    public long? GetNumber(string name) => ImageCreateRequest.ParseNumber(name, GetString(name));
}
