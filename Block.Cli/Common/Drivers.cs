using Block.Crypto;
using Block.Curl;
using Block.Drivers;
using Block.Formats;
using Block.Gluster;
using Block.Iscsi;
using Block.Nbd.Client;
using Block.Nfs;
using Block.Qcow2;
using Block.Rbd;
using Block.Ssh;
using Block.Vmdk;

namespace Block.Cli.Common;

/// <summary>The drivers the <c>blk</c> tool registers: the core ones and every format package it is built with.</summary>
internal static class Drivers
{
    public static DriverRegistry Create() => DriverRegistry.CreateDefault().AddQcow2().AddVmdk().AddFormats().AddLuks().AddNbd().AddSsh().AddCurl().AddIscsi().AddRbd().AddNfs().AddGluster();
}
