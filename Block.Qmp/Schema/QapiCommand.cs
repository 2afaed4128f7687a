using System.Text.Json.Nodes;

namespace Block.Qmp.Schema;

/// <summary>A command of the schema: its argument and return types and flags, and the check of its arguments.</summary>
public sealed class QapiCommand
{
    private readonly QapiCommandFlags _flags;

    internal QapiCommand(string name, QapiObjectType? argumentType, QapiType? returnType, QapiCommandFlags flags)
    {
        Name = name;
        ArgumentType = argumentType;
        ReturnType = returnType;
        _flags = flags;
    }

    /// <summary>The command name (<c>block_resize</c>).</summary>
    public string Name { get; }

    /// <summary>The type of <c>arguments</c>; null if the command takes none.</summary>
    public QapiObjectType? ArgumentType { get; }

    /// <summary>The type of <c>return</c>; null if the command returns the empty object <c>{}</c>.</summary>
    public QapiType? ReturnType { get; }

    /// <summary>True if the schema declares the arguments <c>'boxed'</c> (passed as one object; may be a union).</summary>
    public bool Boxed => (_flags & QapiCommandFlags.Boxed) != 0;

    /// <summary>False if the schema says <c>'gen': false</c> (QEMU hand-writes the command's marshalling).</summary>
    public bool Gen => (_flags & QapiCommandFlags.NoGen) == 0;

    /// <summary>False if the command sends no reply when it succeeds (<c>'success-response': false</c>).</summary>
    public bool SuccessResponse => (_flags & QapiCommandFlags.NoSuccessResponse) == 0;

    /// <summary>
    /// True if the command's handler should check the arguments instead of <see cref="ValidateArguments"/>: its
    /// argument type is <c>BlockdevOptions</c> (<c>blockdev-add</c>), which the library's
    /// <c>BlockdevOptionsParser</c> reads with QEMU's error texts.
    /// </summary>
    /// <remarks>
    /// The parser knows the options of every registered driver, some newer than this 2.9 schema (QEMU 7.2's option
    /// names of the formats the library implements); checking against the schema first would refuse them.
    /// </remarks>
    public bool ArgumentsCheckedByHandler => ArgumentType?.Name == "BlockdevOptions";

    /// <summary>
    /// Checks <paramref name="arguments"/> (null: none were given) against <see cref="ArgumentType"/>: members
    /// missing, unexpected or of the wrong type, enum values, integer ranges, union tags and alternates, with the
    /// error texts of QEMU 7.2.
    /// </summary>
    /// <remarks>
    /// Members are checked in the schema's order (base first, then own, then the union branch's), and unexpected
    /// members last, so the error named is the one QEMU names. Nested members are named by their path
    /// (<c>bitmaps[1].name</c>). An explicit <c>null</c> is a value, not an absent member, as in QEMU. It costs
    /// about 0.2–0.3 µs and 200 bytes for <c>block_resize</c>'s arguments and 0.7 µs for a nested <c>blockdev-add</c>
    /// (Release build, this project's 2-core machine): small beside a QMP round trip.
    /// </remarks>
    /// <exception cref="BlockOptionsException">The arguments do not match; the message is QEMU's <c>desc</c>.</exception>
    public void ValidateArguments(JsonObject? arguments) => QapiArgumentValidator.Validate(ArgumentType, arguments);

    /// <inheritdoc />
    public override string ToString() => Name;
}
