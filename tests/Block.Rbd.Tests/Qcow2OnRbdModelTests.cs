using Block.Drivers;
using Block.Graph;
using Block.Qapi;
using Block.Qcow2;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Rbd.Tests;

/// <summary>
/// A qcow2 image on rbd against a flat byte model (<see cref="RemoteQcow2Model"/>): random writes, write-zeroes, discards, flushes and reopens read
/// back as the model says, and afterwards <c>qemu-img check</c> finds the image clean and qemu-img reads the model.
/// </summary>
public sealed class Qcow2OnRbdModelTests(CephCluster cluster) : IClassFixture<CephCluster>
{
    [Fact]
    public void Random_operation_sequences_match_the_byte_model_and_check_clean()
    {
        var property = Prop.ForAll(Gen.ListOf(RemoteQcow2Model.Operations(), 25).ToArbitrary(), ops => RunSequence([.. ops]));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(4), property);
    }

    private void RunSequence(RemoteQcow2Model.Op[] ops)
    {
        string name = cluster.Name(CephCluster.NewImageName("qcow"));
        QemuImg.Run("create", "-q", "-f", "qcow2", "-o", $"cluster_size={RemoteQcow2Model.ClusterSize}", name,
            RemoteQcow2Model.Size.ToString(System.Globalization.CultureInfo.InvariantCulture)).EnsureSuccess("qemu-img create");
        ByteModel model;
        var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2().AddRbd() });
        try
        {
            model = RemoteQcow2Model.Run(ops, () => graph.OpenImageAsync(name,
                new ImageOpenOptions { Format = "qcow2", Discard = BlockdevDiscardOptions.Unmap }).AsTask().GetAwaiter().GetResult());
        }
        finally
        {
            graph.DisposeAsync().AsTask().Wait();
        }
        var check = QemuImg.Check(name, "qcow2");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        using var dir = new TempDirectory();
        string raw = dir.File("oracle.raw");
        QemuImg.Run("convert", "-f", "qcow2", "-O", "raw", name, raw).EnsureSuccess("qemu-img convert");
        Assert.Equal(-1, model.FirstMismatch(0, File.ReadAllBytes(raw)));
    }
}
