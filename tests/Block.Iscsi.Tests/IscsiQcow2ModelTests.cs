using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Iscsi.Tests;

/// <summary>
/// A qcow2 image on a LUN against a flat byte model (<see cref="RemoteQcow2Model"/>): random writes, write-zeroes,
/// discards, flushes and reopens read back as the model says, and the image stays clean for <c>qemu-img check</c>.
/// </summary>
public sealed class IscsiQcow2ModelTests : IDisposable
{
    private readonly TgtTarget _target = new(size: 32L << 20);

    [Fact]
    public void Random_operation_sequences_on_a_qcow2_image_on_a_lun_match_the_byte_model()
    {
        var property = Prop.ForAll(Gen.ListOf(RemoteQcow2Model.Operations(), 25).ToArbitrary(), ops => RunSequence([.. ops]));
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(4), property);
    }

    private void RunSequence(RemoteQcow2Model.Op[] ops)
    {
        QemuImg.Run("create", "-f", "qcow2", "-o", $"cluster_size={RemoteQcow2Model.ClusterSize}", _target.Url, $"{RemoteQcow2Model.Size}")
            .EnsureSuccess("qemu-img create");
        ByteModel model;
        var graph = IscsiGraphs.NewGraph();
        try
        {
            model = RemoteQcow2Model.Run(ops, () => IscsiGraphs.Open(graph, _target, "qcow2"));
        }
        finally
        {
            graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        var check = QemuImg.Check(_target.Url, "qcow2");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        string flat = _target.Directory.File("model.raw");
        File.WriteAllBytes(flat, model.Bytes.ToArray());
        Assert.Equal(0, QemuImg.Compare(_target.Url, flat, "qcow2", "raw"));
    }

    public void Dispose() => _target.Dispose();
}
