using System.Buffers.Binary;

namespace Block.Nbd.Protocol;

/// <summary>A transmission request header as it came off the wire.</summary>
/// <param name="Flags">The command flags.</param>
/// <param name="Type">The command.</param>
/// <param name="Cookie">The client's handle, echoed in the reply.</param>
/// <param name="Offset">The byte offset.</param>
/// <param name="Length">The byte count.</param>
public readonly record struct NbdRequest(ushort Flags, ushort Type, ulong Cookie, ulong Offset, uint Length)
{
    /// <summary>Parses a 28-byte request header; false when the magic is wrong.</summary>
    public static bool TryParse(ReadOnlySpan<byte> header, out NbdRequest request)
    {
        if (header.Length < NbdProtocol.RequestHeaderSize || BinaryPrimitives.ReadUInt32BigEndian(header) != NbdProtocol.RequestMagic)
        {
            request = default;
            return false;
        }
        request = new NbdRequest(
            BinaryPrimitives.ReadUInt16BigEndian(header[4..]),
            BinaryPrimitives.ReadUInt16BigEndian(header[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(header[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(header[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(header[24..]));
        return true;
    }

    /// <summary>Writes this request's 28-byte header into <paramref name="header"/>.</summary>
    public void Write(Span<byte> header)
    {
        BinaryPrimitives.WriteUInt32BigEndian(header, NbdProtocol.RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(header[4..], Flags);
        BinaryPrimitives.WriteUInt16BigEndian(header[6..], Type);
        BinaryPrimitives.WriteUInt64BigEndian(header[8..], Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(header[16..], Offset);
        BinaryPrimitives.WriteUInt32BigEndian(header[24..], Length);
    }
}
