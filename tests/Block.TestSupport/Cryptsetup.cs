using System.Globalization;
using System.Text.RegularExpressions;

namespace Block.TestSupport;

/// <summary>
/// The LUKS oracle: Debian's cryptsetup (package <c>cryptsetup-bin</c>), which reads and formats LUKS1 headers in
/// plain files without a kernel device. A test that needs it fails loudly when it is missing: the test command
/// installs it.
/// </summary>
public static partial class Cryptsetup
{
    private static readonly Lazy<string> s_path = new(() => ProcessRunner.Which("cryptsetup") ?? FindSbin()
        ?? throw new InvalidOperationException("cryptsetup is not installed: the LUKS oracle tests need Debian's cryptsetup-bin (run ./test.sh, which installs it)"));

    /// <summary>Path of the cryptsetup binary.</summary>
    public static string Path => s_path.Value;

    /// <summary>Runs cryptsetup with <paramref name="args"/>.</summary>
    public static ProcessResult Run(params string[] args) => ProcessRunner.Run(Path, args);

    /// <summary><c>cryptsetup luksDump</c>: the header's fields by their printed names (<c>Cipher mode</c> → <c>xts-plain64</c>), slot lines included.</summary>
    public static IReadOnlyDictionary<string, string> Dump(string path)
    {
        var text = Run("luksDump", path).EnsureSuccess("cryptsetup luksDump").Stdout;
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        string? slot = null;
        foreach (var line in text.Split('\n'))
        {
            var m = Field().Match(line);
            if (!m.Success)
                continue;
            string key = m.Groups[1].Value.Trim();
            string value = m.Groups[2].Value.Trim();
            if (key.StartsWith("Key Slot", StringComparison.Ordinal))
            {
                slot = key;
                fields[key] = value;
            }
            else
            {
                fields[line.StartsWith('\t') && slot != null ? $"{slot} {key}" : key] = value;
            }
        }
        return fields;
    }

    /// <summary>The master key cryptsetup recovers with <paramref name="passphrase"/> (<c>luksDump --dump-master-key</c>).</summary>
    public static byte[] DumpMasterKey(string path, string passphrase)
    {
        string keyFile = path + ".pass";
        File.WriteAllText(keyFile, passphrase);
        try
        {
            var text = Run("luksDump", "--dump-master-key", "-q", "--key-file", keyFile, path).EnsureSuccess("cryptsetup luksDump --dump-master-key").Stdout;
            int start = text.IndexOf("MK dump:", StringComparison.Ordinal);
            if (start < 0)
                throw new InvalidOperationException("cryptsetup printed no master key:\n" + text);
            var hex = HexBytes().Matches(text[(start + 8)..]).Select(m => byte.Parse(m.Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            return [.. hex];
        }
        finally
        {
            File.Delete(keyFile);
        }
    }

    /// <summary>
    /// <c>cryptsetup luksFormat --type luks1</c> on an existing file, with <paramref name="cipher"/>
    /// (<c>aes-xts-plain64</c>), <paramref name="keyBits"/> and <paramref name="hash"/>, and 1000 PBKDF2 iterations
    /// (forced: calibrating them would cost cryptsetup two seconds).
    /// </summary>
    public static void Format(string path, string passphrase, string cipher, int keyBits, string hash)
    {
        string keyFile = path + ".pass";
        File.WriteAllText(keyFile, passphrase);
        try
        {
            Run("luksFormat", "--type", "luks1", "-q", "--pbkdf-force-iterations", "1000", "--cipher", cipher, "--key-size",
                keyBits.ToString(CultureInfo.InvariantCulture), "--hash", hash, "--key-file", keyFile, path).EnsureSuccess("cryptsetup luksFormat");
        }
        finally
        {
            File.Delete(keyFile);
        }
    }

    private static string? FindSbin() => File.Exists("/usr/sbin/cryptsetup") ? "/usr/sbin/cryptsetup" : File.Exists("/sbin/cryptsetup") ? "/sbin/cryptsetup" : null;

    [GeneratedRegex(@"^\s*([^:]+):\s*(.*)$")]
    private static partial Regex Field();

    [GeneratedRegex(@"\b[0-9a-f]{2}\b")]
    private static partial Regex HexBytes();
}
