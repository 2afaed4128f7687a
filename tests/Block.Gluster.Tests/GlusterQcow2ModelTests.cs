using Block.Graph;
using Block.Qapi;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Gluster.Tests;

/// <summary>
/// A qcow2 image on the volume, opened through the library over <c>gluster://</c>, against a flat byte model
/// (<see cref="RemoteQcow2Model"/>): random sequences of writes (many in flight at once), write-zeroes, discards,
/// flushes and reopens read back as the model says, and leave an image <c>qemu-img check</c> finds clean and reads
/// identically.
/// </summary>
[Collection(GlusterServerCollection.Name)]
public sealed class GlusterQcow2ModelTests(GlusterServer server)
{
    [Fact]
    public void Random_operation_sequences_on_a_qcow2_over_gluster_match_the_byte_model_and_check_clean()
    {
        var property = Prop.ForAll(Gen.ListOf(RemoteQcow2Model.Operations(), 25).ToArbitrary(), ops => Run([.. ops]));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(6), property);
    }

    private void Run(RemoteQcow2Model.Op[] ops)
    {
        string name = GlusterServer.NewName("qcow2");
        TestSupport.QemuImg.Create("qcow2", server.File(name), RemoteQcow2Model.Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            $"cluster_size={RemoteQcow2Model.ClusterSize}");
        ByteModel model;
        var graph = server.NewGraph();
        try
        {
            model = RemoteQcow2Model.Run(ops, () => graph.OpenImageAsync(GlusterServer.Url(name),
                new ImageOpenOptions { Format = "qcow2", Discard = BlockdevDiscardOptions.Unmap }).AsTask().GetAwaiter().GetResult());
        }
        finally
        {
            graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        // Closed: the brick holds every byte (the close sent what write-behind held), so qemu-img reads it directly.
        var check = TestSupport.QemuImg.Check(server.File(name), "qcow2");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        using var dir = new TempDirectory();
        string expected = dir.File("model.raw");
        System.IO.File.WriteAllBytes(expected, model.Bytes.ToArray());
        Assert.Equal(0, TestSupport.QemuImg.Compare(server.File(name), expected, "qcow2", "raw"));
    }
}
