using System.Buffers.Binary;

namespace Block.Tests.Vvfat;

/// <summary>
/// A minimal FAT12/16 reader for the tests, independent of the driver: where each file's last cluster runs on past the
/// file's end (its slack).
/// </summary>
/// <remarks>
/// QEMU 7.2 fills a file's last cluster from a buffer that it reuses for every cluster it serves, and copies only the
/// file's bytes into it, so the slack holds whatever the buffer held before: bytes of the file read just before
/// (<c>qemu-img convert</c> of "hello\n" then "q\n" gives "q\nllo\n"). That depends on what was read before, not on the
/// directory, and leaks one file's bytes into another's cluster; ours are zeroes. The byte-for-byte comparison
/// therefore zeroes the slack of QEMU's image first, and counts what it zeroed.
/// </remarks>
internal static class FatSlack
{
    /// <summary>Zeroes the slack of every file in the FAT12/16 volume at <paramref name="partitionOffset"/> of <paramref name="image"/>; returns the non-zero bytes it cleared.</summary>
    public static long Clear(string image, long partitionOffset)
    {
        using var file = new FileStream(image, FileMode.Open, FileAccess.ReadWrite);
        var boot = new byte[512];
        file.Position = partitionOffset;
        file.ReadExactly(boot);
        int sectorsPerCluster = boot[13];
        int reserved = BinaryPrimitives.ReadUInt16LittleEndian(boot.AsSpan(14));
        int rootEntries = BinaryPrimitives.ReadUInt16LittleEndian(boot.AsSpan(17));
        int sectorsPerFat = BinaryPrimitives.ReadUInt16LittleEndian(boot.AsSpan(22));
        long rootOffset = partitionOffset + (reserved + 2L * sectorsPerFat) * 512;
        long dataOffset = rootOffset + rootEntries * 32L;
        int clusterBytes = sectorsPerCluster * 512;
        long cleared = 0;

        var pending = new Queue<(long Offset, int Length)>();
        pending.Enqueue((rootOffset, rootEntries * 32));
        var seen = new HashSet<long>();
        while (pending.Count > 0)
        {
            var (offset, length) = pending.Dequeue();
            var dir = new byte[length];
            file.Position = offset;
            file.ReadExactly(dir);
            for (int at = 0; at + 32 <= length && dir[at] != 0; at += 32)
            {
                byte attributes = dir[at + 11];
                if (attributes == 0x0f || (attributes & 0x08) != 0 || dir[at] == '.')
                    continue;
                long cluster = BinaryPrimitives.ReadUInt16LittleEndian(dir.AsSpan(at + 26));
                uint size = BinaryPrimitives.ReadUInt32LittleEndian(dir.AsSpan(at + 28));
                long start = dataOffset + (cluster - 2) * clusterBytes;
                if ((attributes & 0x10) != 0)
                {
                    // Contiguous, as vvfat lays them out; a directory's clusters end at its first free entry or at 2 MiB.
                    if (seen.Add(start))
                        pending.Enqueue((start, DirectoryLength(file, start, clusterBytes)));
                    continue;
                }
                if (size == 0 || size % clusterBytes == 0)
                    continue;
                long slackStart = start + size;
                int slack = clusterBytes - (int)(size % clusterBytes);
                var bytes = new byte[slack];
                file.Position = slackStart;
                file.ReadExactly(bytes);
                cleared += bytes.Count(b => b != 0);
                file.Position = slackStart;
                file.Write(new byte[slack]);
            }
        }
        return cleared;
    }

    private static int DirectoryLength(FileStream file, long start, int clusterBytes)
    {
        var entry = new byte[32];
        for (int length = 0; length < 2 << 20; length += 32)
        {
            file.Position = start + length;
            file.ReadExactly(entry);
            if (entry[0] == 0)
                return (length + 32 + clusterBytes - 1) / clusterBytes * clusterBytes;
        }
        return 2 << 20;
    }
}
