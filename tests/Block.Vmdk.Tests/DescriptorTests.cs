using System.Text;
using Block.Vmdk.Descriptor;
using Block.Vmdk.Format;

namespace Block.Vmdk.Tests;

/// <summary>The descriptor parser: QEMU's rules for keys, extent lines and probing, and faithful rewriting.</summary>
public class DescriptorTests
{
    private const string Template =
        "# Disk DescriptorFile\nversion=1\nCID=1a2b3c\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\nparentFileNameHint=\"../base image.vmdk\"\n\n" +
        "# Extent description\nRW 4194304 SPARSE \"d-s001.vmdk\"\nRW 2048 FLAT \"d-f.vmdk\" 16\nRDONLY 100 FLAT \"ro.vmdk\" 0\nNOACCESS 100 SPARSE \"n.vmdk\"\nRW 0 SPARSE \"empty.vmdk\"\n\n" +
        "# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"130\"\nddb.adapterType = \"lsilogic\"\nddb.uuid = \"60 00 C2 9a\"\n";

    [Fact]
    public void Keys_values_parent_and_usable_extent_lines_are_read()
    {
        var d = VmdkDescriptor.Parse(Template);
        Assert.Equal(0x1a2b3cu, d.Cid);
        Assert.Equal(0xffffffffu, d.ParentCid);
        Assert.Equal("twoGbMaxExtentSparse", d.CreateType);
        Assert.Equal("../base image.vmdk", d.ParentFileNameHint);
        Assert.Equal("lsilogic", d["ddb.adapterType"]);
        Assert.Equal("60 00 C2 9a", d["ddb.uuid"]);
        Assert.Equal(
            [new VmdkExtentLine(4194304, VmdkExtentType.Sparse, "SPARSE", "d-s001.vmdk", 0), new VmdkExtentLine(2048, VmdkExtentType.Flat, "FLAT", "d-f.vmdk", 16)],
            d.Extents);
    }

    [Fact]
    public void A_new_cid_changes_only_the_cid_line_and_keeps_line_endings()
    {
        string crlf = Template.Replace("\n", "\r\n");
        var d = VmdkDescriptor.Parse(crlf);
        string updated = d.WithCid(0xdeadbeef);
        Assert.Equal(crlf.Replace("CID=1a2b3c\r\n", "CID=deadbeef\r\n"), updated);
        Assert.Equal(0xdeadbeefu, VmdkDescriptor.Parse(updated).Cid);
        Assert.Equal(0xffffffffu, VmdkDescriptor.Parse(updated).ParentCid);
    }

    [Fact]
    public void Text_ends_at_the_first_nul_and_bytes_survive_a_round_trip()
    {
        var bytes = Encoding.Latin1.GetBytes(Template + "\0RW 1 FLAT \"hidden\" 0\n");
        var d = VmdkDescriptor.Parse(bytes);
        Assert.Equal(2, d.Extents.Count);
        Assert.Equal(Template, d.Text);
        var utf8 = Encoding.UTF8.GetBytes("# Disk DescriptorFile\nversion=1\nCID=5\ncreateType=\"monolithicFlat\"\nRW 1 FLAT \"d\u00e9j\u00e0.vmdk\" 0\n");
        var parsed = VmdkDescriptor.Parse(utf8);
        Assert.Equal("d\u00e9j\u00e0.vmdk", parsed.Extents[0].FileName);
        Assert.Equal(utf8, VmdkDescriptor.ToBytes(parsed.WithCid(parsed.Cid)).AsSpan(0, utf8.Length).ToArray());
    }

    [Theory]
    [InlineData("RW 2048 FLAT \"f\"")]
    [InlineData("RW 2048 SPARSE \"f\" 0")]
    [InlineData("RW 2048 VMFS \"f\" 0")]
    [InlineData("RW 2048 ZERO \"f\"")]
    [InlineData("RW 2048 FLAT \"\" 0")]
    [InlineData("RW 2048 FLAT \"f\" -1")]
    public void Extent_lines_qemu_refuses_are_invalid(string line)
    {
        var e = Assert.Throws<ImageFormatException>(() => VmdkDescriptor.Parse("version=1\ncreateType=\"monolithicFlat\"\n" + line + "\n"));
        Assert.StartsWith("Invalid extent line: ", e.Message);
    }

    [Theory]
    [InlineData("# Disk DescriptorFile\nversion=1\n", true)]
    [InlineData("# a\n# b\r\nversion=3\r\n", true)]
    [InlineData("version=2", true)]
    [InlineData("version=4\n", false)]
    [InlineData("  version=1\n", false)]
    [InlineData("version = 1\n", false)]
    [InlineData("\n\nversion=1\n", false)]
    [InlineData("CID=1\nversion=1\n", false)]
    public void Descriptor_files_are_recognised_as_qemu_probes_them(string start, bool vmdk)
    {
        Assert.Equal(vmdk, VmdkDescriptor.LooksLikeDescriptor(Encoding.ASCII.GetBytes(start)));
        Assert.Equal(vmdk ? 100 : 0, new VmdkDriver().Probe(Encoding.ASCII.GetBytes(start), null));
    }

    [Fact]
    public void Sparse_headers_round_trip_and_are_probed_by_magic()
    {
        var header = new SparseExtentHeader(3, SparseExtentFlags.ValidNewlineTest | SparseExtentFlags.CompressedGrains | SparseExtentFlags.Markers,
            2048, 128, 1, 20, 512, 21, SparseExtentHeader.GrainDirectoryAtEnd, 128, 1, 1);
        var bytes = new byte[512];
        header.Write(bytes);
        Assert.Equal(header, SparseExtentHeader.Parse(bytes));
        Assert.Equal("\n \r\n"u8.ToArray(), bytes.AsSpan(73, 4).ToArray());
        Assert.Equal(100, new VmdkDriver().Probe(bytes, null));
        Assert.Equal(100, new VmdkDriver().Probe("COWD\x01\0\0\0"u8, null));
        Assert.Equal(0, new VmdkDriver().Probe("QFI\xfb"u8, null));
    }
}
