using System.Globalization;
using System.Text.Json.Nodes;

namespace Block.Qmp.Wire;

/// <summary>
/// Builds one JSON value from the tokens of a complete QMP text, with QEMU 7.2's parse error texts
/// (<c>JSON parse error, missing : in object pair</c>…).
/// </summary>
/// <remarks>
/// QMP's JSON is wider than RFC 8259: strings may be single-quoted, and integers too large for int64 are read as
/// uint64 and then as doubles. A standard reader cannot take that, so the tokens of a message (split off the stream by
/// <see cref="QmpMessageReader"/>) are assembled here. Nesting is bounded by the reader, so recursion is too.
/// </remarks>
internal sealed class QmpJsonParser
{
    private readonly List<QmpToken> _tokens;
    private int _position;

    private QmpJsonParser(List<QmpToken> tokens)
    {
        _tokens = tokens;
    }

    /// <summary>Parses <paramref name="tokens"/> as one value.</summary>
    /// <exception cref="QmpParseException">The tokens are not one JSON value; the message is QEMU's.</exception>
    public static JsonNode? Parse(List<QmpToken> tokens)
    {
        var parser = new QmpJsonParser(tokens);
        var value = parser.ParseValue();
        // The reader hands over exactly one value's tokens, so nothing can follow it; a stray closing bracket
        // is a text of its own and fails in ParseValue.
        return value;
    }

    private QmpToken? Next() => _position < _tokens.Count ? _tokens[_position++] : null;

    private QmpToken? Peek() => _position < _tokens.Count ? _tokens[_position] : null;

    private JsonNode? ParseValue()
    {
        var token = Next() ?? throw new QmpParseException("expecting value");
        switch (token.Kind)
        {
            case QmpTokenKind.LeftCurly:
                return ParseObject();
            case QmpTokenKind.LeftSquare:
                return ParseArray();
            case QmpTokenKind.String:
                return JsonValue.Create(StringValue(token));
            case QmpTokenKind.Integer:
                return ParseInteger(token.Text!);
            case QmpTokenKind.Float:
                return JsonValue.Create(double.Parse(token.Text!, NumberStyles.Float, CultureInfo.InvariantCulture));
            case QmpTokenKind.Keyword:
                return token.Text switch
                {
                    "true" => JsonValue.Create(true),
                    "false" => JsonValue.Create(false),
                    "null" => null,
                    _ => throw new QmpParseException($"invalid keyword '{token.Text}'"),
                };
            default:
                throw new QmpParseException("expecting value");
        }
    }

    private static string StringValue(QmpToken token) =>
        token.Error is { } error ? throw new QmpParseException(error) : token.Text!;

    private static JsonNode ParseInteger(string text)
    {
        // As QEMU: int64 when it fits, else uint64, else a double.
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l))
            return JsonValue.Create(l);
        if (ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong u))
            return JsonValue.Create(u);
        return JsonValue.Create(double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture));
    }

    private JsonObject ParseObject()
    {
        var obj = new JsonObject();
        if (Peek() is { Kind: QmpTokenKind.RightCurly })
        {
            _position++;
            return obj;
        }
        while (true)
        {
            // As in QEMU, the key is read as any value first, so "{bad}" is an invalid keyword and "{1:2}" a key
            // that is not a string.
            if (ParseValue() is not JsonValue key || key.GetValueKind() != System.Text.Json.JsonValueKind.String)
                throw new QmpParseException("key is not a string in object");
            string name = key.GetValue<string>();
            if (Next() is not { Kind: QmpTokenKind.Colon })
                throw new QmpParseException("missing : in object pair");
            var value = ParseValue();
            if (obj.ContainsKey(name))
                throw new QmpParseException("duplicate key");
            obj[name] = value;
            var separator = Next();
            if (separator is { Kind: QmpTokenKind.RightCurly })
                return obj;
            if (separator is not { Kind: QmpTokenKind.Comma })
                throw new QmpParseException("expected separator in dict");
        }
    }

    private JsonArray ParseArray()
    {
        var array = new JsonArray();
        if (Peek() is { Kind: QmpTokenKind.RightSquare })
        {
            _position++;
            return array;
        }
        while (true)
        {
            array.Add(ParseValue());
            var separator = Next();
            if (separator is { Kind: QmpTokenKind.RightSquare })
                return array;
            if (separator is not { Kind: QmpTokenKind.Comma })
                throw new QmpParseException("expected separator in list");
        }
    }
}

/// <summary>A QMP text that is not valid JSON. The message is the part after QEMU's "JSON parse error, ".</summary>
internal sealed class QmpParseException(string message) : Exception(message);
