namespace Block.Qcow2.Format;

/// <summary>Numbers as QEMU's messages print them, for messages that must read the same.</summary>
internal static class QemuText
{
    /// <summary>C's <c>%#x</c>: <c>0x</c> and lowercase hex digits, but a bare <c>0</c> for zero.</summary>
    public static string AlternateHex(ulong value) => value == 0 ? "0" : $"0x{value:x}";
}
