using Block.Drivers;

namespace Block.Curl;

/// <summary>Registers the curl protocol drivers with a driver registry.</summary>
public static class CurlDriverRegistration
{
    /// <summary>Adds the <c>http</c>, <c>https</c>, <c>ftp</c> and <c>ftps</c> protocol drivers to <paramref name="registry"/>.</summary>
    /// <remarks>Registering loads nothing: libcurl is loaded when the first curl node opens.</remarks>
    public static DriverRegistry AddCurl(this DriverRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        foreach (var scheme in CurlDriver.Schemes)
            registry.Add(new CurlDriver(scheme));
        return registry;
    }
}
