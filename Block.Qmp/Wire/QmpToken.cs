namespace Block.Qmp.Wire;

/// <summary>The kinds of token the QMP lexer produces.</summary>
internal enum QmpTokenKind : byte
{
    LeftCurly,
    RightCurly,
    LeftSquare,
    RightSquare,
    Colon,
    Comma,
    String,
    Integer,
    Float,
    Keyword,
}

/// <summary>One token of a QMP JSON text: punctuation, or a scalar with its text (strings already unescaped).</summary>
/// <param name="Kind">What the token is.</param>
/// <param name="Text">A string's value, a number's or keyword's spelling; null for punctuation.</param>
/// <param name="Error">For a string whose escapes were invalid, the parse error it raises when it is read.</param>
internal readonly record struct QmpToken(QmpTokenKind Kind, string? Text = null, string? Error = null);
