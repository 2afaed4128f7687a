using System.Text;

namespace Block.Tools.QapiGen;

/// <summary>
/// Reads QAPI schema text: a sequence of top-level objects in QAPI's JSON dialect (<c>#</c> comments to the end of the
/// line, single-quoted strings, <c>true</c>/<c>false</c>).
/// </summary>
/// <remarks>
/// An object is returned as a list of key/value pairs in text order, because the order of members, enum values and
/// union branches is part of the interface (it is the order QEMU visits and introspects them). Comments, and with
/// them every piece of documentation, are dropped here, so nothing but interface facts reaches the generated table.
/// </remarks>
internal sealed class QapiReader
{
    private readonly string _text;
    private readonly string _file;
    private int _pos;
    private int _line = 1;

    private QapiReader(string text, string file)
    {
        _text = text;
        _file = file;
    }

    /// <summary>Parses every top-level expression of <paramref name="text"/>.</summary>
    /// <exception cref="QapiSchemaException">The text is not valid QAPI syntax; the message names file and line.</exception>
    public static List<QapiObject> Parse(string text, string file)
    {
        var reader = new QapiReader(text, file);
        var result = new List<QapiObject>();
        while (true)
        {
            reader.SkipSpaceAndComments();
            if (reader._pos >= reader._text.Length)
                return result;
            int line = reader._line;
            if (reader.ReadValue() is not QapiObject obj)
                throw reader.Error("a top-level expression must be an object", line);
            obj.Line = line;
            result.Add(obj);
        }
    }

    private object ReadValue()
    {
        SkipSpaceAndComments();
        if (_pos >= _text.Length)
            throw Error("unexpected end of text");
        char c = _text[_pos];
        switch (c)
        {
            case '{':
                return ReadObject();
            case '[':
                return ReadArray();
            case '\'':
            case '"':
                return ReadString();
            default:
                if (Match("true"))
                    return true;
                if (Match("false"))
                    return false;
                throw Error($"unexpected character '{c}'");
        }
    }

    private QapiObject ReadObject()
    {
        var obj = new QapiObject { File = _file, Line = _line };
        _pos++;
        SkipSpaceAndComments();
        if (Peek() == '}')
        {
            _pos++;
            return obj;
        }
        while (true)
        {
            SkipSpaceAndComments();
            if (Peek() is not ('\'' or '"'))
                throw Error("expected a member name");
            string key = ReadString();
            if (obj.Has(key))
                throw Error($"duplicate key '{key}'");
            SkipSpaceAndComments();
            Expect(':');
            obj.Members.Add(new(key, ReadValue()));
            SkipSpaceAndComments();
            if (Peek() == ',')
            {
                _pos++;
                continue;
            }
            Expect('}');
            return obj;
        }
    }

    private List<object> ReadArray()
    {
        var list = new List<object>();
        _pos++;
        SkipSpaceAndComments();
        if (Peek() == ']')
        {
            _pos++;
            return list;
        }
        while (true)
        {
            list.Add(ReadValue());
            SkipSpaceAndComments();
            if (Peek() == ',')
            {
                _pos++;
                continue;
            }
            Expect(']');
            return list;
        }
    }

    private string ReadString()
    {
        char quote = _text[_pos++];
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _text.Length || _text[_pos] == '\n')
                throw Error("unterminated string");
            char c = _text[_pos++];
            if (c == quote)
                return sb.ToString();
            if (c == '\\')
            {
                if (_pos >= _text.Length)
                    throw Error("unterminated string");
                char e = _text[_pos++];
                sb.Append(e switch
                {
                    'n' => '\n',
                    't' => '\t',
                    _ => e,
                });
                continue;
            }
            sb.Append(c);
        }
    }

    private void SkipSpaceAndComments()
    {
        while (_pos < _text.Length)
        {
            char c = _text[_pos];
            if (c == '\n')
            {
                _line++;
                _pos++;
            }
            else if (char.IsWhiteSpace(c))
            {
                _pos++;
            }
            else if (c == '#')
            {
                while (_pos < _text.Length && _text[_pos] != '\n')
                    _pos++;
            }
            else
            {
                return;
            }
        }
    }

    private bool Match(string word)
    {
        if (string.CompareOrdinal(_text, _pos, word, 0, word.Length) != 0)
            return false;
        _pos += word.Length;
        return true;
    }

    private char Peek() => _pos < _text.Length ? _text[_pos] : '\0';

    private void Expect(char c)
    {
        if (_pos >= _text.Length)
            throw Error($"unexpected end of text, expected '{c}'");
        if (Peek() != c)
            throw Error($"expected '{c}'");
        _pos++;
    }

    private QapiSchemaException Error(string message, int? line = null) => new($"{_file}:{line ?? _line}: {message}");
}
