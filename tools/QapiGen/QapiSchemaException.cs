namespace Block.Tools.QapiGen;

/// <summary>The schema text is malformed or inconsistent; the message says where and why.</summary>
internal sealed class QapiSchemaException(string message) : Exception(message);
