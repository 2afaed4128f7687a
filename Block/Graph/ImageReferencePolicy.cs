namespace Block.Graph;

/// <summary>
/// Decides whether files named <em>inside</em> an image (backing files, external data files, extent files) may be
/// opened, and whether their format may be guessed. Every such open goes through it, so that an untrusted image
/// cannot make the library open <c>/etc/shadow</c> as its backing file without the embedder saying so.
/// </summary>
/// <remarks>
/// <see cref="Allow"/> is what qemu-img does and what the <c>blk</c> tool uses. Embedders that open images they did not
/// make should use <see cref="Deny"/> or <see cref="RestrictTo(string)"/>.
/// </remarks>
public sealed record ImageReferencePolicy
{
    private readonly string? _directory;
    private readonly bool _allow;

    private ImageReferencePolicy(bool allow, string? directory, bool allowProbing)
    {
        _allow = allow;
        _directory = directory is null ? null : Path.GetFullPath(directory).TrimEnd('/') + "/";
        AllowProbing = allowProbing;
    }

    /// <summary>Any file may be opened, and a missing format may be probed (qemu-img's behaviour).</summary>
    public static ImageReferencePolicy Allow { get; } = new(true, null, allowProbing: true);

    /// <summary>No referenced file may be opened.</summary>
    public static ImageReferencePolicy Deny { get; } = new(false, null, allowProbing: false);

    /// <summary>Only files inside <paramref name="directory"/> (after resolving <c>..</c> and symbolic names) may be opened; formats are not probed.</summary>
    public static ImageReferencePolicy RestrictTo(string directory) => new(true, directory, allowProbing: false);

    /// <summary>Whether the format of a referenced file may be guessed when the image does not record it.</summary>
    public bool AllowProbing { get; init; }

    /// <summary>Throws unless <paramref name="resolvedPath"/>, named by <paramref name="referencedBy"/>, may be opened.</summary>
    /// <exception cref="BlockException">EACCES: the policy refuses the file.</exception>
    public void Check(string resolvedPath, string referencedBy)
    {
        if (!_allow)
            throw new BlockException(Errno.EACCES, $"Opening '{resolvedPath}' (named by '{referencedBy}') is not allowed by the image reference policy");
        if (_directory is null)
            return;
        string full = Path.GetFullPath(resolvedPath);
        var info = new FileInfo(full);
        if (info.LinkTarget != null && info.ResolveLinkTarget(returnFinalTarget: true) is { } target)
            full = target.FullName;
        if (!full.StartsWith(_directory, StringComparison.Ordinal))
            throw new BlockException(Errno.EACCES, $"'{resolvedPath}' (named by '{referencedBy}') is outside '{_directory.TrimEnd('/')}', the only directory the image reference policy allows");
    }
}
