using System.Text;
using System.Text.Json.Nodes;

namespace Block.Qmp.Wire;

/// <summary>One JSON text read off a QMP stream, or the parse error that replaced it.</summary>
/// <param name="Value">The value (null is JSON <c>null</c>); meaningless when <see cref="Error"/> is set.</param>
/// <param name="Error">QEMU's error text (<c>JSON parse error, …</c>), or null.</param>
public readonly record struct QmpInput(JsonNode? Value, string? Error);

/// <summary>
/// Splits a QMP byte stream into JSON texts as QEMU's JSON lexer and streamer do: texts need no separators or line
/// ends, a text ends when its brackets balance, a lexical error is reported at once and skipped, and the stream
/// goes on after every error.
/// </summary>
/// <remarks>
/// <para>
/// Why not <c>Utf8JsonReader</c>: QMP takes single-quoted strings and reports errors in QEMU's words, and a client
/// must be able to send garbage and keep its connection. So bytes go through a small lexer into tokens, and
/// <see cref="QmpJsonParser"/> builds a value from each balanced token run.
/// </para>
/// <para>
/// Every resource is bounded, as in QEMU: a text's tokens may take at most <see cref="QmpReaderLimits.MaxMessageBytes"/>
/// bytes and number at most <see cref="QmpReaderLimits.MaxTokens"/>, nested at most
/// <see cref="QmpReaderLimits.MaxNesting"/> deep. Past a limit the text is dropped with QEMU's error and reading
/// resumes, so a 100 MB line costs at most the limit in memory.
/// </para>
/// </remarks>
public sealed class QmpMessageReader
{
    private enum LexState : byte
    {
        Start,
        String,
        StringEscape,
        Number,
        Keyword,
        Recovery,
    }

    private enum NumberState : byte
    {
        Minus,
        Zero,
        Integer,
        Dot,
        Fraction,
        Exponent,
        ExponentSign,
        ExponentDigits,
    }

    private const int TokenOverheadBytes = 32;

    private readonly QmpReaderLimits _limits;
    private readonly List<QmpToken> _tokens = [];
    private readonly List<byte> _scalar = [];
    private LexState _state;
    private NumberState _number;
    private byte _quote;
    private bool _floatNumber;
    private int _braces;
    private int _brackets;
    private long _messageBytes;

    /// <summary>Creates a reader with <paramref name="limits"/> (QEMU's by default).</summary>
    public QmpMessageReader(QmpReaderLimits? limits = null)
    {
        _limits = limits ?? QmpReaderLimits.Default;
    }

    /// <summary>
    /// Reads <paramref name="data"/>, appending every text it completes (or its error) to <paramref name="output"/>.
    /// A text may span any number of calls.
    /// </summary>
    public void Feed(ReadOnlySpan<byte> data, List<QmpInput> output)
    {
        for (int i = 0; i < data.Length; i++)
        {
            if (!Consume(data[i], output))
                i--; // the byte ended a token and must be read again from the start state
        }
    }

    /// <summary>
    /// Ends the stream: a number or keyword still open at the end completes (QEMU flushes its lexer at EOF);
    /// an unbalanced text is dropped.
    /// </summary>
    public void Finish(List<QmpInput> output)
    {
        if (_state is LexState.Number or LexState.Keyword)
            Consume((byte)' ', output);
        Reset();
        _state = LexState.Start;
    }

    /// <summary>Consumes one byte; false if the byte was not consumed and must be fed again.</summary>
    private bool Consume(byte b, List<QmpInput> output)
    {
        switch (_state)
        {
            case LexState.Start:
                return Start(b, output);
            case LexState.String:
                if (b == _quote)
                {
                    _state = LexState.Start;
                    EmitString(output);
                }
                else if (b == '\\')
                {
                    _state = LexState.StringEscape;
                    AppendScalar(b, output);
                }
                else if (b < 0x20 || b >= 0xFE)
                {
                    // Control characters and bytes that are never UTF-8 end a string in error, so that a client can
                    // always get the stream back in step (QMP's specification suggests 0xFF).
                    LexError(Encoding.UTF8.GetString([_quote, .. _scalar, b]), output);
                }
                else
                {
                    AppendScalar(b, output);
                }
                return true;
            case LexState.StringEscape:
                _state = LexState.String;
                if (b < 0x20 || b >= 0xFE)
                    LexError(Encoding.UTF8.GetString([_quote, .. _scalar, b]), output);
                else
                    AppendScalar(b, output);
                return true;
            case LexState.Number:
                return NumberByte(b, output);
            case LexState.Keyword:
                if (b is >= (byte)'a' and <= (byte)'z')
                {
                    AppendScalar(b, output);
                    return true;
                }
                _state = LexState.Start;
                Emit(new QmpToken(QmpTokenKind.Keyword, Encoding.ASCII.GetString([.. _scalar])), output);
                return false;
            case LexState.Recovery:
                // After a lexical error, input is skipped up to a bracket, a control character other than tab, or a
                // byte that is never UTF-8 (0xFE, 0xFF); that byte starts afresh. A client can therefore always
                // resynchronise with a line end, as QMP's specification promises.
                if (b is (byte)'{' or (byte)'}' or (byte)'[' or (byte)']' or 0xFE or 0xFF || (b < 0x20 && b != '\t'))
                {
                    _state = LexState.Start;
                    return false;
                }
                return true;
            default:
                throw new InvalidOperationException();
        }
    }

    private bool Start(byte b, List<QmpInput> output)
    {
        switch (b)
        {
            case (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n':
                return true;
            case (byte)'{':
                Emit(new QmpToken(QmpTokenKind.LeftCurly), output);
                return true;
            case (byte)'}':
                Emit(new QmpToken(QmpTokenKind.RightCurly), output);
                return true;
            case (byte)'[':
                Emit(new QmpToken(QmpTokenKind.LeftSquare), output);
                return true;
            case (byte)']':
                Emit(new QmpToken(QmpTokenKind.RightSquare), output);
                return true;
            case (byte)':':
                Emit(new QmpToken(QmpTokenKind.Colon), output);
                return true;
            case (byte)',':
                Emit(new QmpToken(QmpTokenKind.Comma), output);
                return true;
            case (byte)'"' or (byte)'\'':
                _scalar.Clear();
                _quote = b;
                _state = LexState.String;
                return true;
            case (byte)'-':
                BeginScalar(LexState.Number, b);
                _number = NumberState.Minus;
                return true;
            case (byte)'0':
                BeginScalar(LexState.Number, b);
                _number = NumberState.Zero;
                return true;
            case >= (byte)'1' and <= (byte)'9':
                BeginScalar(LexState.Number, b);
                _number = NumberState.Integer;
                return true;
            case >= (byte)'a' and <= (byte)'z':
                BeginScalar(LexState.Keyword, b);
                return true;
            default:
                LexError(Encoding.UTF8.GetString([b]), output);
                return true;
        }
    }

    private void BeginScalar(LexState state, byte first)
    {
        _scalar.Clear();
        _scalar.Add(first);
        _floatNumber = false;
        _state = state;
    }

    private bool NumberByte(byte b, List<QmpInput> output)
    {
        bool digit = b is >= (byte)'0' and <= (byte)'9';
        NumberState? next = _number switch
        {
            NumberState.Minus => b == '0' ? NumberState.Zero : digit ? NumberState.Integer : null,
            NumberState.Zero => b == '.' ? NumberState.Dot : b is (byte)'e' or (byte)'E' ? NumberState.Exponent : null,
            NumberState.Integer => digit ? NumberState.Integer : b == '.' ? NumberState.Dot : b is (byte)'e' or (byte)'E' ? NumberState.Exponent : null,
            NumberState.Dot => digit ? NumberState.Fraction : null,
            NumberState.Fraction => digit ? NumberState.Fraction : b is (byte)'e' or (byte)'E' ? NumberState.Exponent : null,
            NumberState.Exponent => digit ? NumberState.ExponentDigits : b is (byte)'+' or (byte)'-' ? NumberState.ExponentSign : null,
            NumberState.ExponentSign => digit ? NumberState.ExponentDigits : null,
            NumberState.ExponentDigits => digit ? NumberState.ExponentDigits : null,
            _ => null,
        };
        if (next is { } n)
        {
            if (n is NumberState.Dot or NumberState.Exponent)
                _floatNumber = true;
            _number = n;
            AppendScalar(b, output);
            return true;
        }
        // A digit after a leading zero is an error, as in QEMU ("stray '01'"); any other byte ends a complete number.
        bool complete = _number is NumberState.Integer or NumberState.Fraction or NumberState.ExponentDigits
            || (_number == NumberState.Zero && !digit);
        if (!complete)
        {
            LexError(Encoding.UTF8.GetString([.. _scalar, b]), output);
            return true;
        }
        _state = LexState.Start;
        string text = Encoding.ASCII.GetString([.. _scalar]);
        Emit(new QmpToken(_floatNumber ? QmpTokenKind.Float : QmpTokenKind.Integer, text), output);
        return false;
    }

    private void AppendScalar(byte b, List<QmpInput> output)
    {
        _scalar.Add(b);
        if (_messageBytes + (2L * _scalar.Count) > _limits.MaxMessageBytes)
        {
            // The token alone overflows the text's budget: drop it and the text, and skip the rest of the token.
            _scalar.Clear();
            _state = LexState.Recovery;
            LimitError("JSON token size limit exceeded", output);
        }
    }

    private void LexError(string text, List<QmpInput> output)
    {
        _scalar.Clear();
        Reset();
        output.Add(new QmpInput(null, $"JSON parse error, stray '{text}'"));
        _state = LexState.Recovery;
    }

    private void EmitString(List<QmpInput> output)
    {
        var (text, error) = QmpStringDecoder.Decode(_scalar);
        Emit(new QmpToken(QmpTokenKind.String, text, error), output);
    }

    private void Emit(QmpToken token, List<QmpInput> output)
    {
        // Count what the token costs in memory (its object and its text), so the byte limit bounds both.
        _messageBytes += TokenOverheadBytes + (2L * (token.Text?.Length ?? 0));
        _tokens.Add(token);
        switch (token.Kind)
        {
            case QmpTokenKind.LeftCurly:
                _braces++;
                break;
            case QmpTokenKind.RightCurly:
                _braces--;
                break;
            case QmpTokenKind.LeftSquare:
                _brackets++;
                break;
            case QmpTokenKind.RightSquare:
                _brackets--;
                break;
        }

        if (_braces < 0 || _brackets < 0 || (_braces == 0 && _brackets == 0))
        {
            Complete(output);
            return;
        }
        if (_braces + _brackets > _limits.MaxNesting)
            LimitError("JSON nesting depth limit exceeded", output);
        else if (_tokens.Count > _limits.MaxTokens)
            LimitError("JSON token count limit exceeded", output);
        else if (_messageBytes > _limits.MaxMessageBytes)
            LimitError("JSON token size limit exceeded", output);
    }

    private void Complete(List<QmpInput> output)
    {
        try
        {
            output.Add(new QmpInput(QmpJsonParser.Parse(_tokens), null));
        }
        catch (QmpParseException e)
        {
            output.Add(new QmpInput(null, "JSON parse error, " + e.Message));
        }
        finally
        {
            Reset();
        }
    }

    private void LimitError(string message, List<QmpInput> output)
    {
        Reset();
        output.Add(new QmpInput(null, message));
    }

    private void Reset()
    {
        _tokens.Clear();
        _braces = 0;
        _brackets = 0;
        _messageBytes = 0;
    }
}

/// <summary>The bounds of one QMP text.</summary>
/// <remarks>
/// QEMU bounds a text at 64 MiB of token text and 2 Mi tokens. Ours count memory (32 bytes per token plus two per
/// character) and default to 16 MiB and 256 Ki tokens, so a client costs at most that while it sends a text: the
/// largest real command, a <c>blockdev-add</c> of a deep backing chain, is a few KiB.
/// </remarks>
public sealed record QmpReaderLimits
{
    /// <summary>16 MiB, 256 Ki tokens, 1024 levels.</summary>
    public static QmpReaderLimits Default { get; } = new();

    /// <summary>The most bytes one text's tokens may take in memory.</summary>
    public long MaxMessageBytes { get; init; } = 16L << 20;

    /// <summary>The most tokens one text may hold.</summary>
    public int MaxTokens { get; init; } = 256 << 10;

    /// <summary>The deepest nesting of objects and arrays (1024, QEMU's <c>MAX_NESTING</c>).</summary>
    public int MaxNesting { get; init; } = 1024;
}
