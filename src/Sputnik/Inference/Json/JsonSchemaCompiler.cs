using System.Text.Encodings.Web;
using System.Text.Json;

namespace Sputnik.Inference.Json;

/// <summary>A schema uses something constrained decoding cannot enforce; <see cref="Keyword"/> names it.</summary>
internal sealed class JsonSchemaException(string keyword, string message) : Exception(message)
{
    public string Keyword { get; } = keyword;
}

/// <summary>
/// Compiles the JSON Schema subset that constrained decoding enforces into <see cref="SchemaNode"/>s: type (one or a
/// list), properties / required / additionalProperties, items / minItems / maxItems, minLength / maxLength,
/// enum / const, anyOf / oneOf whose alternatives start differently, and $ref into #/$defs (or #/definitions).
/// Annotations are ignored; any other keyword is refused by name rather than silently not enforced.
/// </summary>
internal static class JsonSchemaCompiler
{
    private static readonly HashSet<string> Annotations =
        ["title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly", "$defs", "definitions"];

    private static readonly JsonWriterOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    public static SchemaNode Compile(JsonElement schema) => new Context(schema).CompileRoot(schema);

    /// <summary>Compact JSON text of a value: the exact bytes a literal must be written as.</summary>
    public static byte[] CompactBytes(JsonElement value)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, Compact)) value.WriteTo(w);
        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] QuotedName(string name)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, Compact)) w.WriteStringValue(name);
        return buffer.WrittenSpan.ToArray();
    }

    private sealed class Context(JsonElement root)
    {
        private readonly Dictionary<string, SchemaNode> _refs = [];
        private readonly List<(SchemaNode Node, string Keyword, string At)> _choices = [];

        /// <summary>Compiles the root, then checks what only the whole graph can tell (references may point forward).</summary>
        public SchemaNode CompileRoot(JsonElement s)
        {
            var node = Compile(s, "schema");
            foreach (var (n, keyword, at) in _choices) CheckNotSelfStarting(n, keyword, at, []);
            foreach (var (n, keyword, at) in _choices) CheckDistinctStarts(n, keyword, at);
            foreach (var r in _refs.Values) CheckNotSelfStarting(r, "$ref", "$defs", []);
            SchemaNode.ComputeMinBytes(_nodes);
            return node;
        }

        private readonly List<SchemaNode> _nodes = [];

        public SchemaNode Compile(JsonElement s, string at)
        {
            var node = New();
            Fill(node, s, at);
            return node;
        }

        private SchemaNode New()
        {
            var n = new SchemaNode();
            _nodes.Add(n);
            return n;
        }

        /// <summary>A value must consume a byte before it can recurse; a loop through $ref/anyOf alone never would.</summary>
        private static void CheckNotSelfStarting(SchemaNode n, string keyword, string at, HashSet<SchemaNode> path)
        {
            if (n.Kind is not (SchemaKind.Ref or SchemaKind.AnyOf)) return;
            if (!path.Add(n)) throw new JsonSchemaException(keyword, $"'{keyword}' at {at} refers back to itself before any value starts");
            if (n.Kind == SchemaKind.Ref) CheckNotSelfStarting(n.Target!, keyword, at, path);
            else foreach (var a in n.Alternatives) CheckNotSelfStarting(a, keyword, at, path);
            path.Remove(n);
        }

        private void Fill(SchemaNode node, JsonElement s, string at)
        {
            if (s.ValueKind == JsonValueKind.True) { node.Kind = SchemaKind.Any; return; }
            if (s.ValueKind != JsonValueKind.Object) throw new JsonSchemaException(at, $"'{at}' must be a schema object");
            foreach (var p in s.EnumerateObject())
                if (!Annotations.Contains(p.Name) && !IsHandled(p.Name))
                    throw new JsonSchemaException(p.Name, $"JSON schema keyword '{p.Name}' (at {at}) is not supported by constrained decoding");

            if (s.TryGetProperty("$ref", out var r)) SetRef(node, r, s, at);
            else if (s.TryGetProperty("enum", out var e)) Literals(node, e.ValueKind == JsonValueKind.Array ? e.EnumerateArray().ToList() : throw Bad("enum", at, "an array"), "enum", at);
            else if (s.TryGetProperty("const", out var c)) Literals(node, [c], "const", at);
            else if (s.TryGetProperty("anyOf", out var any)) AnyOf(node, any, "anyOf", at);
            else if (s.TryGetProperty("oneOf", out var one)) AnyOf(node, one, "oneOf", at); // alternatives never overlap, so oneOf = anyOf
            else if (s.TryGetProperty("type", out var t)) Typed(node, t, s, at);
            else node.Kind = SchemaKind.Any;
        }

        private static bool IsHandled(string k) => k is "$ref" or "enum" or "const" or "anyOf" or "oneOf" or "type" or "properties" or "required"
            or "additionalProperties" or "items" or "minItems" or "maxItems" or "minLength" or "maxLength";

        private void SetRef(SchemaNode node, JsonElement r, JsonElement s, string at)
        {
            foreach (var p in s.EnumerateObject())
                if (p.Name != "$ref" && !Annotations.Contains(p.Name))
                    throw new JsonSchemaException(p.Name, $"'{p.Name}' next to '$ref' (at {at}) is not supported");
            node.Kind = SchemaKind.Ref;
            node.Target = Resolve(r, at);
        }

        private SchemaNode Resolve(JsonElement r, string at)
        {
            string? path = r.ValueKind == JsonValueKind.String ? r.GetString() : null;
            string? name = path switch
            {
                not null when path.StartsWith("#/$defs/", StringComparison.Ordinal) => path["#/$defs/".Length..],
                not null when path.StartsWith("#/definitions/", StringComparison.Ordinal) => path["#/definitions/".Length..],
                _ => null,
            };
            if (name == null) throw new JsonSchemaException("$ref", $"'$ref' at {at} must point into #/$defs (got {r.GetRawText()})");
            if (_refs.TryGetValue(path!, out var known)) return known;
            string container = path!.StartsWith("#/$defs/", StringComparison.Ordinal) ? "$defs" : "definitions";
            if (!root.TryGetProperty(container, out var defs) || defs.ValueKind != JsonValueKind.Object || !defs.TryGetProperty(name, out var def))
                throw new JsonSchemaException("$ref", $"'$ref' at {at} points to {path}, which the schema does not define");
            var node = New();
            _refs[path] = node; // registered before compiling, so recursive references find it
            Fill(node, def, path[2..]);
            return node;
        }

        private static void Literals(SchemaNode node, List<JsonElement> values, string keyword, string at)
        {
            if (values.Count == 0) throw Bad(keyword, at, "a non-empty array");
            var lit = SchemaNode.Literal(values.Select(CompactBytes).ToArray());
            node.Kind = SchemaKind.Literal;
            node.Literals = lit.Literals;
            node.MinBytes = lit.MinBytes;
        }

        private void AnyOf(SchemaNode node, JsonElement list, string keyword, string at)
        {
            if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0) throw Bad(keyword, at, "a non-empty array of schemas");
            var alts = list.EnumerateArray().Select((a, i) => Compile(a, $"{at}.{keyword}[{i}]")).ToArray();
            SetAlternatives(node, alts, keyword, at);
        }

        private void SetAlternatives(SchemaNode node, SchemaNode[] alts, string keyword, string at)
        {
            node.Kind = SchemaKind.AnyOf;
            node.Alternatives = alts;
            _choices.Add((node, keyword, at));
        }

        /// <summary>The first byte of a value must say which alternative it is; two that can start alike are ambiguous.</summary>
        private static void CheckDistinctStarts(SchemaNode node, string keyword, string at)
        {
            for (int b = 0; b < 256; b++)
            {
                int n = node.Alternatives.Count(a => a.CanStartWith((byte)b));
                if (n > 1)
                    throw new JsonSchemaException(keyword, $"'{keyword}' at {at} has alternatives that can both start with '{(char)b}'; " +
                        "constrained decoding needs alternatives of different types (e.g. one object, one string, one null)");
            }
        }

        private void Typed(SchemaNode node, JsonElement t, JsonElement s, string at)
        {
            if (t.ValueKind == JsonValueKind.String)
            {
                Single(node, t.GetString()!, s, at);
                return;
            }
            if (t.ValueKind != JsonValueKind.Array || t.GetArrayLength() == 0 || t.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
                throw Bad("type", at, "a type name or a non-empty array of them");
            var alts = t.EnumerateArray().Select(x =>
            {
                var n = New();
                Single(n, x.GetString()!, s, at);
                return n;
            }).ToArray();
            if (alts.Length == 1) Single(node, t[0].GetString()!, s, at);
            else SetAlternatives(node, alts, "type", at);
        }

        private void Single(SchemaNode node, string type, JsonElement s, string at)
        {
            var f = new Keywords(s, at);
            switch (type)
            {
                case "object":
                    node.Kind = SchemaKind.Object;
                    Object(node, f, at);
                    break;
                case "array":
                    node.Kind = SchemaKind.Array;
                    node.Items = s.TryGetProperty("items", out var items) ? Compile(items, at + ".items") : SchemaNode.AnyValue;
                    node.MinItems = f.Count("minItems", 0);
                    node.MaxItems = f.Count("maxItems", int.MaxValue);
                    if (node.MinItems > node.MaxItems) throw Bad("minItems", at, "at most maxItems");
                    break;
                case "string":
                    node.Kind = SchemaKind.String;
                    node.MinLength = f.Count("minLength", 0);
                    node.MaxLength = f.Count("maxLength", int.MaxValue);
                    if (node.MinLength > node.MaxLength) throw Bad("minLength", at, "at most maxLength");
                    break;
                case "number": node.Kind = SchemaKind.Number; break;
                case "integer": node.Kind = SchemaKind.Integer; break;
                case "boolean": Copy(node, SchemaNode.Boolean); break;
                case "null": Copy(node, SchemaNode.Null); break;
                default: throw new JsonSchemaException("type", $"type '{type}' at {at} is unknown (object, array, string, number, integer, boolean, null)");
            }
        }

        private static void Copy(SchemaNode node, SchemaNode literal)
        {
            node.Kind = SchemaKind.Literal;
            node.Literals = literal.Literals;
            node.MinBytes = literal.MinBytes;
        }

        private void Object(SchemaNode node, Keywords f, string at)
        {
            var s = f.Schema;
            var names = new List<(byte[] Name, string Text, SchemaNode Schema)>();
            if (s.TryGetProperty("properties", out var props))
            {
                if (props.ValueKind != JsonValueKind.Object) throw Bad("properties", at, "an object");
                foreach (var p in props.EnumerateObject())
                    names.Add((QuotedName(p.Name), p.Name, Compile(p.Value, $"{at}.properties.{p.Name}")));
            }
            if (names.Count > 64) throw new JsonSchemaException("properties", $"'properties' at {at} has {names.Count} entries; at most 64 are supported");
            names.Sort((a, b) => ByteArrayComparer.Instance.Compare(a.Name, b.Name));
            node.PropertyNames = names.Select(n => n.Name).ToArray();
            node.PropertySchemas = names.Select(n => n.Schema).ToArray();
            if (s.TryGetProperty("required", out var req))
            {
                if (req.ValueKind != JsonValueKind.Array) throw Bad("required", at, "an array of property names");
                foreach (var r in req.EnumerateArray())
                {
                    int i = r.ValueKind == JsonValueKind.String ? names.FindIndex(n => n.Text == r.GetString()) : -1;
                    if (i < 0) throw new JsonSchemaException("required", $"'required' at {at} names {r.GetRawText()}, which is not among its properties");
                    node.Required |= 1UL << i;
                }
            }
            node.AdditionalProperties = s.TryGetProperty("additionalProperties", out var ap) ? ap.ValueKind switch
            {
                JsonValueKind.False => null,
                JsonValueKind.True => SchemaNode.AnyValue,
                _ => Compile(ap, at + ".additionalProperties"),
            } : SchemaNode.AnyValue;
        }
    }

    private static JsonSchemaException Bad(string keyword, string at, string expected) =>
        new(keyword, $"'{keyword}' at {at} must be {expected}");

    /// <summary>Reads the numeric keywords of one schema object.</summary>
    private readonly struct Keywords(JsonElement schema, string at)
    {
        public JsonElement Schema => schema;

        public int Count(string keyword, int fallback)
        {
            if (!schema.TryGetProperty(keyword, out var v)) return fallback;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0) throw Bad(keyword, at, "a non-negative integer");
            return n;
        }
    }
}
