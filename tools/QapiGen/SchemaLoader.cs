namespace Block.Tools.QapiGen;

/// <summary>
/// Turns the expressions of QEMU's schema file and of our supplement into one desugared, checked list of
/// <see cref="Definition"/>s in schema order.
/// </summary>
internal static class SchemaLoader
{
    /// <summary>The builtin type names.</summary>
    public static readonly IReadOnlySet<string> Builtins = new HashSet<string>(StringComparer.Ordinal)
    {
        "str", "int", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "size",
        "bool", "number", "any", "null",
    };

    private static readonly string[] s_metaKeys = ["enum", "struct", "union", "alternate", "command", "event"];

    /// <summary>
    /// Loads <paramref name="schema"/> (QEMU's file) and <paramref name="supplement"/> (ours). A name the supplement
    /// defines again replaces the schema's definition in place if the supplement's <c>override</c> pragma lists it.
    /// </summary>
    /// <exception cref="QapiSchemaException">A definition is malformed, defined twice, or refers to what does not exist.</exception>
    public static List<Definition> Load(IReadOnlyList<QapiObject> schema, IReadOnlyList<QapiObject> supplement)
    {
        var overrides = new HashSet<string>(StringComparer.Ordinal);
        var supplementByName = new Dictionary<string, QapiObject>(StringComparer.Ordinal);
        var ordered = new List<QapiObject>();
        foreach (var expr in supplement)
        {
            if (expr.Get("pragma") is QapiObject pragma)
            {
                foreach (var name in StringList(pragma.Get("override"), expr, "override"))
                    overrides.Add(name);
                continue;
            }
            if (expr.Has("include"))
                continue;
            supplementByName.TryAdd(NameOf(expr), expr);
        }

        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var expr in schema)
        {
            if (expr.Has("include") || expr.Has("pragma"))
                continue;
            string name = NameOf(expr);
            if (supplementByName.TryGetValue(name, out var replacement))
            {
                if (!overrides.Contains(name))
                    throw new QapiSchemaException($"{replacement.Location}: '{name}' is already defined at {expr.Location}; list it in the 'override' pragma to replace it");
                ordered.Add(replacement);
                used.Add(name);
            }
            else
            {
                ordered.Add(expr);
            }
        }
        foreach (var name in overrides)
        {
            if (!used.Contains(name))
                throw new QapiSchemaException($"the 'override' pragma names '{name}', which the schema does not define");
        }
        foreach (var expr in supplement)
        {
            if (expr.Has("pragma") || expr.Has("include"))
                continue;
            if (!used.Contains(NameOf(expr)))
                ordered.Add(expr);
        }

        var definitions = new List<Definition>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var desugarer = new Desugarer(definitions, names);
        foreach (var expr in ordered)
            desugarer.Add(expr);
        Check(definitions);
        return definitions;
    }

    private static string NameOf(QapiObject expr)
    {
        foreach (var key in s_metaKeys)
        {
            if (expr.Get(key) is string name)
                return name;
        }
        throw new QapiSchemaException($"{expr.Location}: an expression must be one of {string.Join(", ", s_metaKeys)}, include or pragma");
    }

    private static IEnumerable<string> StringList(object? value, QapiObject where, string what)
    {
        if (value is not List<object> list || list.Exists(v => v is not string))
            throw new QapiSchemaException($"{where.Location}: '{what}' must be a list of strings");
        return list.Cast<string>();
    }

    /// <summary>Checks that every reference resolves and every union, alternate, command and event is well formed.</summary>
    private static void Check(List<Definition> definitions)
    {
        var byName = definitions.ToDictionary(d => d.Name, StringComparer.Ordinal);

        Definition? Resolve(string type, string user)
        {
            string element = type.StartsWith('[') ? type[1..^1] : type;
            if (Builtins.Contains(element))
                return null;
            if (byName.TryGetValue(element, out var d) && d is not CommandDefinition and not EventDefinition)
                return d;
            throw new QapiSchemaException($"'{user}' refers to '{element}', which is not a type of the schema");
        }

        IEnumerable<MemberDefinition> AllMembers(StructDefinition s)
        {
            if (s.Base != null)
            {
                if (byName[s.Base] is not StructDefinition b)
                    throw new QapiSchemaException($"'{s.Name}': base '{s.Base}' is not a struct");
                foreach (var m in AllMembers(b))
                    yield return m;
            }
            foreach (var m in s.Members)
                yield return m;
        }

        foreach (var d in definitions)
        {
            switch (d)
            {
                case StructDefinition s:
                    if (s.Base != null)
                        Resolve(s.Base, s.Name);
                    var seen = new HashSet<string>(StringComparer.Ordinal);
                    foreach (var m in AllMembers(s))
                    {
                        Resolve(m.Type, s.Name);
                        if (!seen.Add(m.Name))
                            throw new QapiSchemaException($"'{s.Name}': member '{m.Name}' is defined twice");
                    }
                    break;
                case UnionDefinition u:
                    if (Resolve(u.Base, u.Name) is not StructDefinition baseStruct)
                        throw new QapiSchemaException($"'{u.Name}': base '{u.Base}' is not a struct");
                    var tag = AllMembers(baseStruct).FirstOrDefault(m => m.Name == u.Tag)
                        ?? throw new QapiSchemaException($"'{u.Name}': discriminator '{u.Tag}' is not a member of the base");
                    if (tag.Optional || Resolve(tag.Type, u.Name) is not EnumDefinition tagEnum)
                        throw new QapiSchemaException($"'{u.Name}': discriminator '{u.Tag}' must be a required enum member");
                    foreach (var (c, type) in u.Variants)
                    {
                        if (!tagEnum.Values.Contains(c))
                            throw new QapiSchemaException($"'{u.Name}': branch '{c}' is not a value of '{tagEnum.Name}'");
                        if (Resolve(type, u.Name) is not StructDefinition)
                            throw new QapiSchemaException($"'{u.Name}': branch '{c}' must be a struct, not '{type}'");
                    }
                    break;
                case AlternateDefinition a:
                    var kinds = new HashSet<string>(StringComparer.Ordinal);
                    foreach (var (branch, type) in a.Branches)
                    {
                        if (type.StartsWith('['))
                            throw new QapiSchemaException($"'{a.Name}': branch '{branch}' cannot be an array");
                        var target = Resolve(type, a.Name);
                        string kind = target switch
                        {
                            null => type switch
                            {
                                "str" => "string",
                                "bool" => "boolean",
                                "null" => "null",
                                "any" => throw new QapiSchemaException($"'{a.Name}': branch '{branch}' cannot be 'any'"),
                                _ => "number",
                            },
                            EnumDefinition => "string",
                            AlternateDefinition => throw new QapiSchemaException($"'{a.Name}': branch '{branch}' cannot be an alternate"),
                            _ => "object",
                        };
                        if (!kinds.Add(kind))
                            throw new QapiSchemaException($"'{a.Name}': two branches take a JSON {kind}");
                    }
                    break;
                case CommandDefinition c:
                    if (c.Arguments != null && Resolve(c.Arguments, c.Name) is not (StructDefinition or UnionDefinition))
                        throw new QapiSchemaException($"'{c.Name}': arguments must be an object type");
                    if (!c.Boxed && c.Arguments != null && byName[c.Arguments] is not StructDefinition)
                        throw new QapiSchemaException($"'{c.Name}': a union argument type needs 'boxed': true");
                    if (c.Returns != null)
                        Resolve(c.Returns, c.Name);
                    break;
                case EventDefinition e:
                    if (e.Data != null && Resolve(e.Data, e.Name) is not (StructDefinition or UnionDefinition))
                        throw new QapiSchemaException($"'{e.Name}': data must be an object type");
                    break;
            }
        }
    }

    /// <summary>Turns expressions into definitions, adding the implicit types each needs just before it.</summary>
    private sealed class Desugarer(List<Definition> definitions, HashSet<string> names)
    {
        public void Add(QapiObject expr)
        {
            if (expr.Get("enum") is string enumName)
            {
                Define(new EnumDefinition(enumName, false, EnumValues(expr)), expr);
            }
            else if (expr.Get("struct") is string structName)
            {
                string? baseName = expr.Get("base") switch
                {
                    null => null,
                    string s => s,
                    _ => throw new QapiSchemaException($"{expr.Location}: a struct's base must be a type name"),
                };
                Define(new StructDefinition(structName, false, baseName, Members(expr.Get("data"), expr)), expr);
            }
            else if (expr.Get("union") is string unionName)
            {
                AddUnion(unionName, expr);
            }
            else if (expr.Get("alternate") is string alternateName)
            {
                if (expr.Get("data") is not QapiObject data)
                    throw new QapiSchemaException($"{expr.Location}: an alternate's data must be an object");
                var branches = data.Members.Select(m => new KeyValuePair<string, string>(m.Key, TypeRef(m.Value, expr))).ToList();
                Define(new AlternateDefinition(alternateName, branches), expr);
            }
            else if (expr.Get("command") is string commandName)
            {
                bool boxed = Flag(expr, "boxed", false);
                string? args = ObjectType(expr.Get("data"), $"q_obj_{commandName}-arg", expr);
                string? returns = expr.Get("returns") is { } r ? TypeRef(r, expr) : null;
                Define(new CommandDefinition(commandName, args, returns, boxed, Flag(expr, "gen", true),
                    Flag(expr, "success-response", true)), expr);
            }
            else if (expr.Get("event") is string eventName)
            {
                string? data = ObjectType(expr.Get("data"), $"q_obj_{eventName}-arg", expr);
                Define(new EventDefinition(eventName, data, Flag(expr, "boxed", false)), expr);
            }
            else
            {
                throw new QapiSchemaException($"{expr.Location}: unknown expression");
            }
        }

        private void AddUnion(string name, QapiObject expr)
        {
            if (expr.Get("data") is not QapiObject data)
                throw new QapiSchemaException($"{expr.Location}: a union's data must be an object");
            if (expr.Get("discriminator") is string tag)
            {
                string baseName = ObjectType(expr.Get("base"), $"q_obj_{name}-base", expr)
                    ?? throw new QapiSchemaException($"{expr.Location}: a flat union needs a base");
                var variants = data.Members.Select(m => new KeyValuePair<string, string>(m.Key, TypeRef(m.Value, expr))).ToList();
                Define(new UnionDefinition(name, baseName, tag, variants), expr);
                return;
            }
            if (expr.Has("base"))
                throw new QapiSchemaException($"{expr.Location}: a union with a base needs a discriminator");

            // A simple union: {"type": CASE, "data": VALUE}.
            string kind = name + "Kind";
            Define(new EnumDefinition(kind, true, data.Members.Select(m => m.Key).ToList()), expr);
            string baseStruct = $"q_obj_{name}-base";
            Define(new StructDefinition(baseStruct, true, null, [new MemberDefinition("type", kind, false)]), expr);
            var wrappers = new List<KeyValuePair<string, string>>();
            foreach (var (c, value) in data.Members)
            {
                string type = TypeRef(value, expr);
                string wrapper = $"q_obj_{type.Replace("[", "").Replace("]", "List")}-wrapper";
                if (!names.Contains(wrapper))
                    Define(new StructDefinition(wrapper, true, null, [new MemberDefinition("data", type, false)]), expr);
                wrappers.Add(new(c, wrapper));
            }
            Define(new UnionDefinition(name, baseStruct, "type", wrappers), expr);
        }

        private string? ObjectType(object? value, string implicitName, QapiObject expr)
        {
            switch (value)
            {
                case null:
                    return null;
                case string s:
                    return s;
                case QapiObject inline:
                    Define(new StructDefinition(implicitName, true, null, Members(inline, expr)), expr);
                    return implicitName;
                default:
                    throw new QapiSchemaException($"{expr.Location}: expected a type name or an object");
            }
        }

        private void Define(Definition definition, QapiObject expr)
        {
            if (SchemaLoader.Builtins.Contains(definition.Name) || !names.Add(definition.Name))
                throw new QapiSchemaException($"{expr.Location}: '{definition.Name}' is already defined");
            definitions.Add(definition);
        }

        private static List<MemberDefinition> Members(object? data, QapiObject expr)
        {
            if (data is null)
                return [];
            if (data is not QapiObject obj)
                throw new QapiSchemaException($"{expr.Location}: members must be an object");
            var members = new List<MemberDefinition>();
            foreach (var (key, value) in obj.Members)
            {
                bool optional = key.StartsWith('*');
                members.Add(new MemberDefinition(optional ? key[1..] : key, TypeRef(value, expr), optional));
            }
            return members;
        }

        private static List<string> EnumValues(QapiObject expr)
        {
            if (expr.Get("data") is not List<object> values)
                throw new QapiSchemaException($"{expr.Location}: an enum's data must be a list");
            return values.Select(v => v switch
            {
                string s => s,
                QapiObject o when o.Get("name") is string s => s,
                _ => throw new QapiSchemaException($"{expr.Location}: an enum value must be a string"),
            }).ToList();
        }

        private static string TypeRef(object value, QapiObject expr) => value switch
        {
            string s => s,
            List<object> { Count: 1 } list when list[0] is string element => $"[{element}]",
            QapiObject o when o.Get("type") is { } t => TypeRef(t, expr),
            _ => throw new QapiSchemaException($"{expr.Location}: expected a type name or [type name]"),
        };

        private static bool Flag(QapiObject expr, string key, bool absent) => expr.Get(key) switch
        {
            null => absent,
            bool b => b,
            _ => throw new QapiSchemaException($"{expr.Location}: '{key}' must be true or false"),
        };
    }
}
