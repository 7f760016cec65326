using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gate.Core.Policy;

/// <summary>
/// Generates each check type's part of the policy JSON Schema from its <see cref="CheckDeclaration"/>: the
/// <c>checkType</c> enum, one <c>if/then</c> branch per type and the type's definition (options with their types,
/// defaults, units, strength annotations and meanings; its metrics under <c>require</c>). The rest of the schema
/// (metadata, model, sandbox, datasets, shared definitions) is kept from the base. The committed
/// policies/schema/policy-v1.schema.json is this output for Gate.Core's own check types (a test holds it so).
/// </summary>
public static class PolicySchemaGenerator
{
    private static readonly string[] Common = ["id", "type", "description", "enforcement"];

    public static JsonObject Generate(JsonObject baseSchema, IEnumerable<CheckDeclaration> declarations)
    {
        var root = (JsonObject)baseSchema.DeepClone();
        var defs = (JsonObject)root["$defs"]!;
        var check = (JsonObject)defs["check"]!;
        // The base's own check definitions are replaced wholesale: what is not declared is not in the schema.
        foreach (var branch in (check["allOf"] as JsonArray ?? []).OfType<JsonObject>())
            if (branch["then"]?["$ref"]?.GetValue<string>() is { } r && r.StartsWith("#/$defs/", StringComparison.Ordinal))
                defs.Remove(r["#/$defs/".Length..]);
        var list = declarations.ToList();
        defs["checkType"] = new JsonObject { ["enum"] = new JsonArray(list.Select(d => (JsonNode)d.Type).ToArray()) };
        var allOf = new JsonArray();
        foreach (var d in list)
        {
            string name = DefName(d.Type);
            allOf.Add(new JsonObject
            {
                ["if"] = new JsonObject { ["properties"] = new JsonObject { ["type"] = new JsonObject { ["const"] = d.Type } } },
                ["then"] = new JsonObject { ["$ref"] = $"#/$defs/{name}" },
            });
            defs[name] = Definition(d);
        }
        check["allOf"] = allOf;
        // Round-trip through text: values built from C# numbers then read back as any numeric type, as parsed ones do.
        return (JsonObject)JsonNode.Parse(root.ToJsonString())!;
    }

    /// <summary>"static-inspection" → "staticInspection".</summary>
    public static string DefName(string type)
    {
        var parts = type.Split('-');
        return parts[0] + string.Concat(parts.Skip(1).Select(p => p.Length == 0 ? "" : char.ToUpperInvariant(p[0]) + p[1..]));
    }

    private static JsonObject Definition(CheckDeclaration d)
    {
        var props = new JsonObject
        {
            ["id"] = new JsonObject { ["$ref"] = "#/$defs/checkId" },
            ["type"] = new JsonObject { ["const"] = d.Type },
            ["description"] = new JsonObject { ["type"] = "string" },
            ["enforcement"] = new JsonObject { ["$ref"] = "#/$defs/enforcement" },
        };
        var required = new List<string>();
        if (d.UsesDataset)
        {
            props["dataset"] = new JsonObject { ["type"] = "string" };
            if (d.NeedsDataset) required.Add("dataset");
        }
        foreach (var o in d.Options)
        {
            if (Common.Contains(o.Key) || o.Key is "dataset" or "require")
                throw new InvalidOperationException($"check type '{d.Type}' declares '{o.Key}', which every check (or the require block) already has");
            props[o.Key] = Fragment(o);
            if (o.Required) required.Add(o.Key);
        }
        if (d.Metrics.Count > 0 || d.PrimaryMetric is not null)
        {
            var metrics = new JsonObject();
            foreach (var m in d.Metrics)
                metrics[m.Name] = new JsonObject { ["$ref"] = m.Estimated ? "#/$defs/estimateBound" : "#/$defs/bound", ["description"] = m.Meaning };
            if (d.PrimaryMetric is { } pm)
            {
                var shorthand = d.Metrics.FirstOrDefault(m => m.Name == pm)?.Range == MetricRange.Fraction
                    ? new JsonObject { ["$ref"] = "#/$defs/probability" } : new JsonObject { ["type"] = "number" };
                shorthand["x-strength"] = "higher-is-stronger";
                shorthand["description"] = $"Shorthand for require.{pm}.min.";
                metrics["min"] = shorthand;
            }
            var req = new JsonObject { ["type"] = "object", ["additionalProperties"] = false };
            if (d.RequireMandatory) req["minProperties"] = 1;
            req["properties"] = metrics;
            props["require"] = req;
            if (d.RequireMandatory) required.Add("require");
        }
        var def = new JsonObject { ["type"] = "object", ["additionalProperties"] = false };
        if (required.Count > 0) def["required"] = new JsonArray(required.Select(r => (JsonNode)r).ToArray());
        def["description"] = d.Purpose;
        def["properties"] = props;
        return def;
    }

    private static JsonObject Fragment(OptionDecl o)
    {
        var f = (JsonObject)o.Type.DeepClone();
        if (o.Fields is { } fields)
        {
            f["type"] = "object";
            f["additionalProperties"] = false;
            AddFields(f, fields);
        }
        if (o.ItemFields is { } items)
        {
            f["type"] = "array";
            var item = new JsonObject { ["type"] = "object", ["additionalProperties"] = false };
            AddFields(item, items);
            f["items"] = item;
        }
        f["description"] = o.Meaning;
        if (o.Default is { } def) f["default"] = def.DeepClone();
        if (o.WhenAbsent is { } wa) f["x-when-absent"] = wa;
        if (o.ScaledWith is { } rule) f["x-scaled-with"] = rule;
        if (o.AbsentIsUnbounded) f["x-absent"] = "unbounded";
        if (o.Unit is { } u) f["x-unit"] = u;
        switch (o.Strength)
        {
            case Strength.HigherIsStronger: f["x-strength"] = "higher-is-stronger"; break;
            case Strength.LowerIsStronger: f["x-strength"] = "lower-is-stronger"; break;
            case Strength.Neutral: f["x-strength"] = "neutral"; break;
            case Strength.Ordered: f["x-order"] = new JsonArray(o.Order!.Select(v => (JsonNode)v).ToArray()); break;
        }
        if (o.ItemKey is { } k) f["x-item-key"] = k;
        return f;
    }

    private static void AddFields(JsonObject target, IReadOnlyList<OptionDecl> fields)
    {
        var req = fields.Where(x => x.Required).Select(x => (JsonNode)x.Key).ToArray();
        if (req.Length > 0) target["required"] = new JsonArray(req);
        var props = new JsonObject();
        foreach (var x in fields) props[x.Key] = Fragment(x);
        target["properties"] = props;
    }

    /// <summary>
    /// The schema as the committed file holds it: indented, with every leaf schema (one without nested properties)
    /// on one line, so a declaration's change is a one-line diff.
    /// </summary>
    public static string Format(JsonNode schema)
    {
        var sb = new StringBuilder();
        Write(schema, 0, sb);
        return sb.Append('\n').ToString();
    }

    private static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static void Write(JsonNode? n, int depth, StringBuilder sb, string? key = null)
    {
        string compact = n?.ToJsonString(Compact) ?? "null";
        // Maps of named schemas, and schemas with nested structure, get a line per entry; leaf schemas stay on one line.
        bool structured = n is JsonObject o && (o.ContainsKey("properties") || o.ContainsKey("allOf") || o.ContainsKey("$defs")
            || o["items"] is JsonObject { } io && io.ContainsKey("properties") || o["additionalProperties"] is JsonObject { } ap && ap.ContainsKey("properties"));
        bool expand = depth == 0 || key is "properties" or "$defs" || (key == "allOf" && n is JsonArray)
            || (structured && compact.Length > 100) || (n is JsonObject && key is "items" or "additionalProperties" && structured);
        if (!expand)
        {
            sb.Append(Spaced(compact));
            return;
        }
        string pad = new(' ', 2 * (depth + 1));
        if (n is JsonObject obj)
        {
            sb.Append("{\n");
            int i = 0;
            foreach (var (k, v) in obj)
            {
                sb.Append(pad).Append(JsonSerializer.Serialize(k, Compact)).Append(": ");
                Write(v, depth + 1, sb, k);
                sb.Append(++i < obj.Count ? ",\n" : "\n");
            }
            sb.Append(new string(' ', 2 * depth)).Append('}');
        }
        else if (n is JsonArray arr)
        {
            sb.Append("[\n");
            for (int i = 0; i < arr.Count; i++)
            {
                sb.Append(pad);
                Write(arr[i], depth + 1, sb);
                sb.Append(i + 1 < arr.Count ? ",\n" : "\n");
            }
            sb.Append(new string(' ', 2 * depth)).Append(']');
        }
    }

    /// <summary>Compact JSON with a space after ':' and ',' outside strings, as the file has always been written.</summary>
    private static string Spaced(string json)
    {
        var sb = new StringBuilder(json.Length + 32);
        bool inString = false, escaped = false;
        foreach (char c in json)
        {
            if (inString)
            {
                sb.Append(c);
                if (escaped) escaped = false;
                else if (c == '\\') escaped = true;
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '}' && sb.Length > 0 && sb[^1] != '{') sb.Append(' ');
            sb.Append(c);
            if (c == '"') inString = true;
            else if (c is ':' or ',' or '{') sb.Append(' ');
        }
        return sb.ToString().Replace("{ }", "{}");
    }
}
