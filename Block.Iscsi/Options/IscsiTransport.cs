using System.Text.Json.Serialization;

namespace Block.Iscsi.Options;

/// <summary>QAPI <c>IscsiTransport</c>: how the initiator reaches the portal.</summary>
public enum IscsiTransport
{
    /// <summary>iSCSI over TCP.</summary>
    [JsonStringEnumMemberName("tcp")]
    Tcp,

    /// <summary>iSCSI Extensions for RDMA; declined at open (see <see cref="IscsiDriver"/>).</summary>
    [JsonStringEnumMemberName("iser")]
    Iser,
}
