using System.Text;
using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Rbd.Options;

/// <summary>
/// QEMU's <c>rbd:pool/[namespace/]image[@snapshot][:key=value[:key=value…]]</c> file names: a backslash escapes the
/// next character (<c>\:</c> in a <c>mon_host</c> address); <c>conf</c> names the configuration file, <c>id</c> the
/// user, and every other key is a librados option.
/// </summary>
public static class RbdFilename
{
    /// <summary>The file name prefix.</summary>
    public const string Prefix = "rbd:";

    /// <summary>Parses an <c>rbd:</c> file name into options.</summary>
    /// <exception cref="BlockOptionsException">A missing pool or image, or an option without a value.</exception>
    public static BlockdevOptionsRbd Parse(string filename)
    {
        ArgumentNullException.ThrowIfNull(filename);
        if (!filename.StartsWith(Prefix, StringComparison.Ordinal))
            throw new BlockOptionsException("File name must start with 'rbd:'");
        int at = Prefix.Length;
        string pool = Token(filename, ref at, "/", out char stop);
        if (pool.Length == 0)
            throw new BlockOptionsException("Parameter 'pool' is missing");
        if (stop != '/')
            throw new BlockOptionsException("Parameter 'image' is missing");
        string? nspace = null;
        string image = Token(filename, ref at, "/@:", out stop);
        if (stop == '/')
        {
            nspace = image;
            image = Token(filename, ref at, "@:", out stop);
        }
        if (image.Length == 0)
            throw new BlockOptionsException("Parameter 'image' is missing");
        string? snapshot = null;
        if (stop == '@')
            snapshot = Token(filename, ref at, ":", out stop);
        string? conf = null;
        string? user = null;
        var extra = new List<KeyValuePair<string, string>>();
        while (stop == ':')
        {
            string name = Token(filename, ref at, "=:", out stop);
            if (stop != '=')
                throw new BlockOptionsException($"conf option '{name}' has no value");
            string value = Token(filename, ref at, ":", out stop);
            if (name == "conf")
                conf = value;
            else if (name == "id")
                user = value;
            else
                extra.Add(new(name, value));
        }
        return new BlockdevOptionsRbd
        {
            Pool = pool,
            Namespace = nspace ?? string.Empty,
            Image = image,
            Snapshot = snapshot,
            Conf = conf,
            User = user,
            ConfigOptions = extra.Count > 0 ? extra : null,
        };
    }

    /// <summary>Reads up to the first unescaped character of <paramref name="delimiters"/>, unescaping backslashes.</summary>
    private static string Token(string s, ref int at, string delimiters, out char stop)
    {
        var sb = new StringBuilder();
        stop = '\0';
        while (at < s.Length)
        {
            char c = s[at++];
            if (c == '\\' && at < s.Length)
            {
                sb.Append(s[at++]);
                continue;
            }
            if (delimiters.Contains(c, StringComparison.Ordinal))
            {
                stop = c;
                return sb.ToString();
            }
            sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>
    /// The node's file name as QEMU 7.2 gives it: a <c>json:</c> object of the options that identify the image
    /// (QEMU's strong runtime options: pool, namespace, image, conf, snapshot, user, server, key-secret).
    /// </summary>
    public static string Format(BlockdevOptionsRbd options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var json = new JsonObject { ["pool"] = options.Pool };
        if (options.Namespace != null)
            json["namespace"] = options.Namespace;
        json["image"] = options.Image;
        if (options.Conf != null)
            json["conf"] = options.Conf;
        if (options.Snapshot != null)
            json["snapshot"] = options.Snapshot;
        if (options.User != null)
            json["user"] = options.User;
        if (options.Server != null)
        {
            var servers = new JsonArray();
            foreach (var server in options.Server)
                servers.Add((JsonNode)new JsonObject { ["host"] = server.Host, ["port"] = server.Port });
            json["server"] = servers;
        }
        if (options.KeySecret != null)
            json["key-secret"] = options.KeySecret;
        json["driver"] = "rbd";
        return "json:" + QemuJson.Compact(json);
    }
}
