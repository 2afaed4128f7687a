namespace Block.Qmp.Schema;

/// <summary>The QAPI builtin types.</summary>
public enum QapiBuiltinKind
{
    /// <summary><c>str</c>: a JSON string.</summary>
    Str,
    /// <summary><c>int</c>: a JSON integer that fits a signed 64-bit integer.</summary>
    Int,
    /// <summary><c>int8</c>.</summary>
    Int8,
    /// <summary><c>int16</c>.</summary>
    Int16,
    /// <summary><c>int32</c>.</summary>
    Int32,
    /// <summary><c>int64</c>, the same as <c>int</c>.</summary>
    Int64,
    /// <summary><c>uint8</c>.</summary>
    UInt8,
    /// <summary><c>uint16</c>.</summary>
    UInt16,
    /// <summary><c>uint32</c>.</summary>
    UInt32,
    /// <summary><c>uint64</c>: a JSON integer up to 2^64-1 (a negative one is taken modulo 2^64, as QEMU takes it).</summary>
    UInt64,
    /// <summary><c>size</c>: a byte count, the same range as <c>uint64</c>.</summary>
    Size,
    /// <summary><c>bool</c>: <c>true</c> or <c>false</c>.</summary>
    Bool,
    /// <summary><c>number</c>: any JSON number.</summary>
    Number,
    /// <summary><c>any</c>: any JSON value.</summary>
    Any,
    /// <summary><c>null</c>: JSON <c>null</c>.</summary>
    Null,
}
