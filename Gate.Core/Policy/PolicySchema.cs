using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Gate.Core.Policy;

/// <summary>
/// The policy JSON Schema (policies/schema/policy-v1.schema.json, embedded) and a validator for the subset of
/// JSON Schema 2020-12 it uses. No JSON-schema package is served here, and a validator over our own node tree
/// reports errors at YAML line/column, which a generic one could not.
/// </summary>
public sealed class PolicySchema
{
    private readonly JsonObject _root;
    private readonly Dictionary<string, Regex> _regexCache = new();

    public PolicySchema(JsonObject root) => _root = root;

    /// <summary>The committed schema file as embedded in Gate.Core: the base that check declarations are generated into.</summary>
    public static JsonObject Embedded
    {
        get
        {
            using var s = typeof(PolicySchema).Assembly.GetManifestResourceStream("policy-v1.schema.json")
                ?? throw new InvalidOperationException("policy schema resource missing from Gate.Core");
            return (JsonObject)JsonNode.Parse(s)!;
        }
    }

    private static (int Version, PolicySchema Schema)? _v1;

    /// <summary>
    /// The schema policies are validated against: the embedded file with the check part generated from every known
    /// check type's declaration (<see cref="CheckTypes"/>), so a registered type validates without editing the file.
    /// </summary>
    public static PolicySchema V1
    {
        get
        {
            var cached = _v1;
            int version = CheckTypes.Version;
            if (cached is { } c && c.Version == version) return c.Schema;
            var schema = new PolicySchema(PolicySchemaGenerator.Generate(Embedded, CheckTypes.All));
            _v1 = (version, schema);
            return schema;
        }
    }
    public JsonObject Root => _root;

    public List<PolicyError> Validate(PolicyNode node)
    {
        var errors = new List<PolicyError>();
        Validate(node, _root, errors);
        return errors;
    }

    /// <summary>
    /// For every mapping in the tree, the keys the schema declares for it (through $ref, allOf and if/then).
    /// The schema-sync test compares these with the keys the binders actually read.
    /// </summary>
    public Dictionary<PolicyMapping, HashSet<string>> DeclaredKeys(PolicyNode node)
    {
        var declared = new Dictionary<PolicyMapping, HashSet<string>>(ReferenceEqualityComparer.Instance);
        _declared = declared;
        try { Validate(node, _root, []); }
        finally { _declared = null; }
        return declared;
    }

    [ThreadStatic] private static Dictionary<PolicyMapping, HashSet<string>>? _declared;

    public JsonObject Resolve(JsonObject schema)
    {
        int guard = 0;
        while (schema["$ref"] is JsonValue r && guard++ < 32)
        {
            var refText = r.GetValue<string>();
            if (!refText.StartsWith("#/", StringComparison.Ordinal)) throw new InvalidOperationException($"unsupported $ref {refText}");
            JsonNode cur = _root;
            foreach (var part in refText[2..].Split('/')) cur = cur[part] ?? throw new InvalidOperationException($"dangling $ref {refText}");
            // Sibling keywords next to $ref (e.g. x-strength) are kept by merging onto the target.
            var target = (JsonObject)cur;
            if (schema.Count > 1)
            {
                var merged = (JsonObject)target.DeepClone();
                foreach (var kv in schema) if (kv.Key != "$ref") merged[kv.Key] = kv.Value?.DeepClone();
                schema = merged;
            }
            else schema = target;
        }
        return schema;
    }

    private bool Matches(PolicyNode node, JsonObject schema)
    {
        var errs = new List<PolicyError>();
        Validate(node, schema, errs);
        return errs.Count == 0;
    }

    private void Validate(PolicyNode node, JsonObject schema, List<PolicyError> errors)
    {
        schema = Resolve(schema);
        void Err(PolicyNode at, string msg) => errors.Add(new PolicyError(at.Location, at.Path, msg));

        if (schema["const"] is JsonValue cv)
        {
            if (!ScalarEquals(node, cv)) { Err(node, $"must be '{cv}'"); return; }
        }
        if (schema["enum"] is JsonArray en)
        {
            if (!en.Any(v => v is JsonValue jv && ScalarEquals(node, jv)))
            {
                string got = node is PolicyScalar sc ? $"'{sc.Value}'" : "a " + Describe(node);
                Err(node, $"must be one of {string.Join(", ", en.Select(v => v!.ToString()))}; got {got}");
                return;
            }
        }
        if (schema["type"] is JsonNode typeNode)
        {
            var types = typeNode is JsonArray ta ? ta.Select(t => t!.GetValue<string>()).ToArray() : [typeNode.GetValue<string>()];
            if (!types.Any(t => HasType(node, t)))
            {
                Err(node, $"must be {string.Join(" or ", types.Select(Article))}, got {Describe(node)}");
                return;
            }
        }
        if (schema["oneOf"] is JsonArray one)
        {
            int n = one.Count(s => Matches(node, (JsonObject)s!));
            if (n != 1)
            {
                var alts = one.Select(s => Summary(Resolve((JsonObject)s!)));
                Err(node, $"must be {string.Join(", or ", alts)}");
                return;
            }
        }
        if (schema["allOf"] is JsonArray all)
            foreach (var s in all) Validate(node, (JsonObject)s!, errors);
        if (schema["if"] is JsonObject ifs && Matches(node, ifs))
        {
            if (schema["then"] is JsonObject then) Validate(node, then, errors);
        }

        switch (node)
        {
            case PolicyScalar s when s.IsNumber:
            {
                double v = s.AsDouble();
                if (schema["minimum"] is JsonValue mn && v < mn.GetValue<double>()) Err(node, $"must be ≥ {Fmt(mn)}");
                if (schema["maximum"] is JsonValue mx && v > mx.GetValue<double>()) Err(node, $"must be ≤ {Fmt(mx)}");
                if (schema["exclusiveMinimum"] is JsonValue emn && !(v > emn.GetValue<double>())) Err(node, $"must be > {Fmt(emn)}");
                if (schema["exclusiveMaximum"] is JsonValue emx && !(v < emx.GetValue<double>())) Err(node, $"must be < {Fmt(emx)}");
                if (double.IsNaN(v) || double.IsInfinity(v)) Err(node, "must be a finite number");
                break;
            }
            case PolicyScalar s when s.Kind == ScalarKind.String:
            {
                if (schema["minLength"] is JsonValue ml && s.Value.Length < ml.GetValue<int>()) Err(node, $"must have at least {ml} characters");
                if (schema["maxLength"] is JsonValue xl && s.Value.Length > xl.GetValue<int>()) Err(node, $"must have at most {xl} characters");
                if (schema["pattern"] is JsonValue p && !Rx(p.GetValue<string>()).IsMatch(s.Value))
                    Err(node, $"'{s.Value}' does not match the expected format {p}");
                break;
            }
            case PolicySequence seq:
            {
                if (schema["minItems"] is JsonValue mi && seq.Items.Count < mi.GetValue<int>()) Err(node, $"must have at least {mi} item(s)");
                if (schema["maxItems"] is JsonValue xi && seq.Items.Count > xi.GetValue<int>()) Err(node, $"must have at most {xi} item(s)");
                if (schema["items"] is JsonObject itemSchema) foreach (var it in seq.Items) Validate(it, itemSchema, errors);
                break;
            }
            case PolicyMapping map:
            {
                var props = schema["properties"] as JsonObject;
                if (_declared is not null && props is not null)
                {
                    if (!_declared.TryGetValue(map, out var set)) _declared[map] = set = [];
                    foreach (var p in props) set.Add(p.Key);
                }
                if (schema["minProperties"] is JsonValue mp && map.Entries.Count < mp.GetValue<int>()) Err(node, $"must have at least {mp} entr{(mp.GetValue<int>() == 1 ? "y" : "ies")}");
                if (schema["required"] is JsonArray req)
                    foreach (var r in req)
                    {
                        var key = r!.GetValue<string>();
                        if (!map.Has(key)) errors.Add(new PolicyError(map.Location, map.Path.Length == 0 ? key : $"{map.Path}.{key}", "is required but missing"));
                    }
                foreach (var (k, v) in map.Entries)
                {
                    if (props?[k.Value] is JsonObject ps) Validate(v, ps, errors);
                    else if (schema["additionalProperties"] is JsonObject addl) Validate(v, addl, errors);
                    else if (schema["additionalProperties"] is JsonValue av && !av.GetValue<bool>())
                    {
                        var allowed = props is null ? "" : $" (allowed: {string.Join(", ", props.Select(p => p.Key))})";
                        errors.Add(new PolicyError(k.Location, v.Path, $"unknown key '{k.Value}'{allowed}"));
                    }
                }
                break;
            }
        }
    }

    private Regex Rx(string pattern)
    {
        if (!_regexCache.TryGetValue(pattern, out var rx)) _regexCache[pattern] = rx = new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        return rx;
    }

    private static string Fmt(JsonValue v) => v.GetValue<double>().ToString(CultureInfo.InvariantCulture);
    private static string Article(string t) => t switch { "integer" => "an integer", "object" => "a mapping", "array" => "a list", "number" => "a number", "string" => "a string", "boolean" => "true or false", _ => t };

    private static string Summary(JsonObject s) =>
        s["const"] is JsonValue c ? $"'{c}'" : s["type"] is JsonValue t ? Article(t.GetValue<string>()) : "a valid value";

    public static string Describe(PolicyNode n) => n switch
    {
        PolicyMapping => "a mapping",
        PolicySequence => "a list",
        PolicyScalar s => s.Kind switch
        {
            ScalarKind.Null => "nothing (null)",
            ScalarKind.Bool => $"boolean {s.Value}",
            ScalarKind.Int => $"integer {s.Value}",
            ScalarKind.Float => $"number {s.Value}",
            _ => $"string '{s.Value}'",
        },
        _ => "?",
    };

    private static bool HasType(PolicyNode n, string t) => t switch
    {
        "object" => n is PolicyMapping,
        "array" => n is PolicySequence,
        "string" => n is PolicyScalar { Kind: ScalarKind.String },
        "number" => n is PolicyScalar { IsNumber: true },
        "integer" => n is PolicyScalar { Kind: ScalarKind.Int },
        "boolean" => n is PolicyScalar { Kind: ScalarKind.Bool },
        "null" => n is PolicyScalar { Kind: ScalarKind.Null },
        _ => false,
    };

    private static bool ScalarEquals(PolicyNode n, JsonValue v)
    {
        if (n is not PolicyScalar s) return false;
        return v.GetValueKind() switch
        {
            System.Text.Json.JsonValueKind.String => s.Kind == ScalarKind.String && s.Value == v.GetValue<string>(),
            System.Text.Json.JsonValueKind.Number => s.IsNumber && s.AsDouble() == v.GetValue<double>(),
            System.Text.Json.JsonValueKind.True => s.Kind == ScalarKind.Bool && s.AsBool(),
            System.Text.Json.JsonValueKind.False => s.Kind == ScalarKind.Bool && !s.AsBool(),
            _ => false,
        };
    }
}
