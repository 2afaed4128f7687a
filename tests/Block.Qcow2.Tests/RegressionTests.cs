using static Block.Qcow2.Tests.ModelTests;

namespace Block.Qcow2.Tests;

/// <summary>Sequences the model tests once found failing, minimised, kept so the bugs stay fixed.</summary>
public class RegressionTests
{
    [Fact]
    public void A_write_across_an_unallocated_and_a_compressed_cluster_keeps_the_backing_data_of_untouched_subclusters()
    {
        // Extended L2: the compressed cluster is copied whole, the unallocated one only in the subclusters written;
        // marking all of the first cluster's subclusters allocated hid the backing file's data.
        RunSequence([new CompressedOp(1, true, 1760214955), new WriteOp(35055, 32832, 2070169950)], "cluster_size=65536,extended_l2=on", true);
    }

    [Fact]
    public void Growing_past_a_partial_compressed_cluster_with_a_backing_file_zeroes_the_new_area()
    {
        // The subcluster zero bits cannot describe part of a compressed cluster: growing must write zero bytes there.
        RunSequence([new CompressedOp(47, true, 5), new ResizeOp(6100), new ResizeOp(6591)], "cluster_size=65536,extended_l2=on", true);
    }

    [Fact]
    public void Shrinking_into_a_cluster_and_growing_again_does_not_bring_back_the_old_bytes()
    {
        RunSequence([new WriteOp(3080192, 65536, 9), new ResizeOp(6100), new ResizeOp(6200)], "cluster_size=65536", false);
    }

    [Fact]
    public void Zeroing_part_of_a_compressed_cluster_with_extended_L2_falls_back_to_writing_zeroes()
    {
        RunSequence([new CompressedOp(3, true, 7), new ZeroOp(3 * 65536 + 4096, 8192, true), new ZeroOp(3 * 65536 + 32768, 65536, false)],
            "cluster_size=65536,extended_l2=on", true);
    }
}
