using Block.Graph;
using Block.Qapi;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Nfs.Tests;

/// <summary>
/// A qcow2 image on the export, opened through the library over <c>nfs://</c>, against a flat byte model
/// (<see cref="RemoteQcow2Model"/>): random
/// sequences of writes (many in flight at once), write-zeroes, discards, flushes and reopens read back as the model
/// says, and leave an image <c>qemu-img check</c> finds clean and reads identically.
/// </summary>
[Collection(NfsServerCollection.Name)]
public sealed class NfsQcow2ModelTests(NfsServer server)
{
    [Fact]
    public void Random_operation_sequences_on_a_qcow2_over_nfs_match_the_byte_model_and_check_clean()
    {
        var property = Prop.ForAll(Gen.ListOf(RemoteQcow2Model.Operations(), 25).ToArbitrary(), ops => Run([.. ops]));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(6), property);
    }

    private void Run(RemoteQcow2Model.Op[] ops)
    {
        string name = NfsServer.NewName("qcow2");
        TestSupport.QemuImg.Create("qcow2", server.File(name), RemoteQcow2Model.Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            $"cluster_size={RemoteQcow2Model.ClusterSize}");
        ByteModel model;
        var graph = server.NewGraph();
        try
        {
            model = RemoteQcow2Model.Run(ops, () => graph.OpenImageAsync(server.Url(name),
                new ImageOpenOptions { Format = "qcow2", Discard = BlockdevDiscardOptions.Unmap }).AsTask().GetAwaiter().GetResult());
        }
        finally
        {
            graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        var check = TestSupport.QemuImg.Check(server.File(name), "qcow2");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        using var dir = new TempDirectory();
        string expected = dir.File("model.raw");
        System.IO.File.WriteAllBytes(expected, model.Bytes.ToArray());
        var compare = server.QemuImg("compare", "-f", "qcow2", "-F", "raw", server.Url(name), expected);
        Assert.True(compare.ExitCode == 0, compare.Stdout + compare.Stderr);
    }
}
