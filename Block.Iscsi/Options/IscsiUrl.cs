using System.Globalization;

namespace Block.Iscsi.Options;

/// <summary>
/// QEMU's iscsi file names: <c>iscsi://[user[%password]@]host[:port]/target-iqn/lun</c> (and <c>iser://</c>), as
/// libiscsi's <c>iscsi_parse_full_url</c> reads them.
/// </summary>
public static class IscsiUrl
{
    private const string Form = "iSCSI URL must be of the form: iscsi://[<username>[%<password>]@]<host>[:<port>]/<target-iqn>/<lun>";

    /// <summary>Parses <paramref name="url"/> into the options QEMU derives from it.</summary>
    /// <exception cref="BlockOptionsException">Not an iscsi URL of that form.</exception>
    public static BlockdevOptionsIscsi Parse(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        IscsiTransport transport;
        string rest;
        if (url.StartsWith("iscsi://", StringComparison.Ordinal))
        {
            transport = IscsiTransport.Tcp;
            rest = url["iscsi://".Length..];
        }
        else if (url.StartsWith("iser://", StringComparison.Ordinal))
        {
            transport = IscsiTransport.Iser;
            rest = url["iser://".Length..];
        }
        else
        {
            throw Invalid(url, "it does not start with iscsi:// or iser://");
        }

        string? user = null, password = null;
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        int at = rest.LastIndexOf('@', slash < 0 ? rest.Length - 1 : slash);
        if (at >= 0)
        {
            string credentials = rest[..at];
            rest = rest[(at + 1)..];
            int percent = credentials.IndexOf('%', StringComparison.Ordinal);
            user = percent < 0 ? credentials : credentials[..percent];
            password = percent < 0 ? null : credentials[(percent + 1)..];
            if (user.Length == 0)
                throw Invalid(url, "the user name is empty");
        }

        slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
            throw Invalid(url, "could not parse <host>/<target-iqn>");
        string portal = rest[..slash];
        string targetAndLun = rest[(slash + 1)..];
        int lunSlash = targetAndLun.LastIndexOf('/');
        if (lunSlash <= 0)
            throw Invalid(url, "could not parse <target-iqn>/<lun>");
        string target = targetAndLun[..lunSlash];
        string lunText = targetAndLun[(lunSlash + 1)..];
        if (!int.TryParse(lunText, NumberStyles.None, CultureInfo.InvariantCulture, out int lun))
            throw Invalid(url, "could not parse <lun>");

        return new BlockdevOptionsIscsi
        {
            Driver = "iscsi",
            Transport = transport,
            Portal = portal,
            Target = target,
            Lun = lun,
            User = user,
            Password = password,
            FromText = true,
        };
    }

    private static BlockOptionsException Invalid(string url, string why) =>
        new($"Failed to parse URL : Invalid URL {url}: {why}. {Form}");
}
