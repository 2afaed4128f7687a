using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Graph;
using Block.Qapi;
using Block.Qcow2;

namespace Block.Iscsi.Tests;

/// <summary>Graphs with the iscsi driver, and LUNs opened through the library.</summary>
internal static class IscsiGraphs
{
    public static BlockGraph NewGraph() =>
        new(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2().AddIscsi() });

    /// <summary>Opens LUN 1 of <paramref name="target"/> under <paramref name="format"/>, with more iscsi options.</summary>
    public static BlockBackend Open(BlockGraph graph, TgtTarget target, string format = "raw", JsonObject? extra = null)
    {
        var iscsi = new JsonObject
        {
            ["driver"] = "iscsi",
            ["transport"] = "tcp",
            ["portal"] = target.Portal,
            ["target"] = TgtTarget.Iqn,
            ["lun"] = 1,
        };
        foreach (var (key, value) in extra ?? [])
            iscsi[key] = value?.DeepClone();
        return graph.OpenImageAsync(new JsonObject { ["driver"] = format, ["file"] = iscsi },
            new ImageOpenOptions { Discard = BlockdevDiscardOptions.Unmap }).AsTask().GetAwaiter().GetResult();
    }
}
