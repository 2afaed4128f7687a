using System.Globalization;
using System.Text;
using Block.Rbd.Interop;
using Block.Rbd.Options;

namespace Block.Rbd.Driver;

/// <summary>
/// A librados cluster handle and an I/O context on the pool (and namespace), configured as QEMU's rbd driver
/// configures them, plus bounded timeouts of our own.
/// </summary>
internal sealed unsafe class RbdConnection : IDisposable
{
    private nint _cluster;
    private nint _ioctx;

    private RbdConnection(nint cluster, nint ioctx)
    {
        _cluster = cluster;
        _ioctx = ioctx;
    }

    /// <summary>The I/O context on the image's pool.</summary>
    public nint IoCtx => _ioctx;

    /// <summary>The operation timeout in seconds this connection runs with (<c>rados_osd_op_timeout</c>).</summary>
    public int OpTimeoutSeconds { get; private set; }

    /// <summary>
    /// Connects to the cluster and opens the pool: the configuration file (or librados' default one, whose absence
    /// is no error), librbd's cache as <paramref name="cache"/>, the key, the authentication modes and the monitors,
    /// the file name's librados options, then our timeouts where the configuration left Ceph's defaults.
    /// </summary>
    /// <remarks>Blocks for as long as librados takes to reach the monitors, at most <c>client_mount_timeout</c>.</remarks>
    public static RbdConnection Connect(BlockdevOptionsRbd options, string? key, bool cache)
    {
        RbdLibrary.EnsureLoaded();
        RbdErrors.Check("error initializing", LibRbd.Create(out nint cluster, options.User));
        nint ioctx = 0;
        try
        {
            if (options.Conf != null)
                RbdErrors.Check($"error reading conf file {options.Conf}", LibRbd.ConfReadFile(cluster, options.Conf));
            else
                LibRbd.ConfReadFile(cluster, null);
            Set(cluster, "rbd_cache", cache ? "true" : "false");
            if (key != null)
                Set(cluster, "key", key);
            if (options.AuthClientRequired is { Count: > 0 } modes)
                Set(cluster, "auth_client_required", string.Join(';', modes));
            if (options.Server is { Count: > 0 } servers)
                Set(cluster, "mon_host", string.Join(';', servers.Select(s => s.Host.Contains(':', StringComparison.Ordinal) ? $"[{s.Host}]:{s.Port}" : $"{s.Host}:{s.Port}")));
            if (options.ConfigOptions != null)
            {
                foreach (var (name, value) in options.ConfigOptions)
                {
                    if (LibRbd.ConfSet(cluster, name, value) < 0)
                        throw new BlockOptionsException($"invalid conf option {name}");
                }
            }
            int opTimeout = DefaultIfUnset(cluster, "rados_osd_op_timeout", 0, RbdDriver.DefaultOpTimeoutSeconds);
            DefaultIfUnset(cluster, "rados_mon_op_timeout", 0, RbdDriver.DefaultOpTimeoutSeconds);
            DefaultIfUnset(cluster, "client_mount_timeout", 300, RbdDriver.DefaultOpTimeoutSeconds);
            RbdErrors.Check("error connecting", LibRbd.Connect(cluster));
            RbdErrors.Check($"error opening pool {options.Pool}", LibRbd.IoCtxCreate(cluster, options.Pool, out ioctx));
            LibRbd.IoCtxSetNamespace(ioctx, options.Namespace ?? string.Empty);
            return new RbdConnection(cluster, ioctx) { OpTimeoutSeconds = opTimeout };
        }
        catch
        {
            if (ioctx != 0)
                LibRbd.IoCtxDestroy(ioctx);
            LibRbd.Shutdown(cluster);
            throw;
        }
    }

    private static void Set(nint cluster, string name, string value) =>
        RbdErrors.Check($"error setting {name}", LibRbd.ConfSet(cluster, name, value));

    /// <summary>Sets <paramref name="name"/> to <paramref name="ours"/> seconds if it still has Ceph's default; returns its value.</summary>
    /// <remarks>
    /// Ceph's defaults wait for ever for a dead OSD or monitor (op timeouts of 0) and five minutes for a first
    /// monitor: QEMU 7.2 hangs there. A configuration or file name that sets them keeps its own values.
    /// </remarks>
    private static int DefaultIfUnset(nint cluster, string name, int cephDefault, int ours)
    {
        byte* buffer = stackalloc byte[64];
        if (LibRbd.ConfGet(cluster, name, buffer, 64) == 0)
        {
            string text = Encoding.ASCII.GetString(buffer, new ReadOnlySpan<byte>(buffer, 64).IndexOf((byte)0) is var n and >= 0 ? n : 64);
            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double current) && current != cephDefault)
                return (int)Math.Ceiling(current);
        }
        Set(cluster, name, ours.ToString(CultureInfo.InvariantCulture));
        return ours;
    }

    public void Dispose()
    {
        if (_ioctx != 0)
            LibRbd.IoCtxDestroy(_ioctx);
        if (_cluster != 0)
            LibRbd.Shutdown(_cluster);
        _ioctx = 0;
        _cluster = 0;
    }
}
