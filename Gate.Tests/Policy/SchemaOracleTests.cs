using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Policy;
using Gate.Tests.Support;
using Json.Schema;

namespace Gate.Tests.Policy;

/// <summary>
/// Differential test of Gate's own policy validator (<see cref="PolicySchema"/>, kept for its YAML line:column
/// messages) against an independent JSON Schema 2020-12 implementation (JsonSchema.Net) over the same schema file,
/// read from policies/schema/ at test time. The corpus is every policy file in the repository plus systematic
/// mutations of the valid ones: each key removed, an unknown key added to each mapping, each value replaced by
/// values of the wrong type and by out-of-range numbers, each list emptied or grown. Both validators see the same
/// text (JSON is YAML) and must agree on accept or reject for every document.
/// </summary>
public class SchemaOracleTests
{
    private static string SchemaPath => Path.Combine(TestPaths.RepoRoot, "policies", "schema", "policy-v1.schema.json");

    /// <summary>Policy files in the repository: the shipped ones, the test ones, the documented ones.</summary>
    private static IEnumerable<string> PolicyFiles() =>
        new[] { "policies", "Gate.Tests/TestData", "Gate.Tests/Governance/Policies", "docs", "examples" }
            .Select(d => Path.Combine(TestPaths.RepoRoot, d)).Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*.yaml", SearchOption.AllDirectories))
            .Where(f => File.ReadAllText(f).Contains("apiVersion: gate/v1", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);

    [Fact]
    public void Gate_validator_and_JsonSchema_Net_agree_on_every_policy_and_mutation()
    {
        var schemaText = File.ReadAllText(SchemaPath);
        var (originals, accepted, rejected, disagreements) = Compare(schemaText, schemaText, PolicyFiles());
        TestContext.Current.TestOutputHelper?.WriteLine($"{originals} policy files, {accepted + rejected} documents: {accepted} accepted, {rejected} rejected");
        // A corpus that cannot tell the validators apart proves nothing: it must hold many of both outcomes.
        Assert.True(originals >= 5, $"only {originals} policy files found");
        Assert.True(accepted >= 100 && rejected >= 500, $"corpus too one-sided: {accepted} accepted, {rejected} rejected");
        Assert.True(disagreements.Count == 0, $"{disagreements.Count} disagreement(s):\n" + string.Join("\n", disagreements.Take(40)));
    }

    /// <summary>The comparison can fail: give Gate's validator a schema that lost one constraint and it must notice.</summary>
    [Fact]
    public void A_validator_that_misses_a_constraint_is_caught()
    {
        var schemaText = File.ReadAllText(SchemaPath);
        Assert.Contains("\"exclusiveMinimum\"", schemaText);
        var weakened = schemaText.Replace("\"exclusiveMinimum\"", "\"x-was-exclusiveMinimum\"", StringComparison.Ordinal);
        var (_, _, _, disagreements) = Compare(weakened, schemaText, [Path.Combine(TestPaths.RepoRoot, "policies", "digits-release.yaml")]);
        Assert.NotEmpty(disagreements);
        Assert.Contains(disagreements, d => d.Contains("Gate accepts", StringComparison.Ordinal));
    }

    /// <summary>Validates every file and each of its mutations with Gate (over <paramref name="oursSchema"/>) and JsonSchema.Net (over <paramref name="oracleSchema"/>).</summary>
    private static (int Originals, int Accepted, int Rejected, List<string> Disagreements) Compare(string oursSchema, string oracleSchema, IEnumerable<string> files)
    {
        var ours = new PolicySchema((JsonObject)JsonNode.Parse(oursSchema)!);
        var oracle = JsonSchema.FromText(oracleSchema, new BuildOptions { SchemaRegistry = new SchemaRegistry() });
        var options = new EvaluationOptions { OutputFormat = OutputFormat.Flag };

        int accepted = 0, rejected = 0, originals = 0;
        var disagreements = new List<string>();
        foreach (var file in files)
        {
            JsonNode doc;
            try { doc = ToJson(PolicyYamlReader.Read(File.ReadAllText(file), file).ToPlain())!; }
            catch (PolicyException) { continue; } // not YAML Gate reads at all (syntax, aliases, two documents): no schema question
            originals++;
            var name = Path.GetRelativePath(TestPaths.RepoRoot, file);
            foreach (var (what, mutant) in Mutations(doc).Prepend(("as written", doc)))
            {
                var text = mutant.ToJsonString();
                var ourErrors = ours.Validate(PolicyYamlReader.Read(text, name));
                bool oursOk = ourErrors.Count == 0;
                using var json = JsonDocument.Parse(text);
                bool oracleOk = oracle.Evaluate(json.RootElement, options).IsValid;
                if (oursOk) accepted++; else rejected++;
                if (oursOk != oracleOk)
                    disagreements.Add($"{name} ({what}): Gate {(oursOk ? "accepts" : "rejects: " + string.Join("; ", ourErrors.Select(e => $"{e.Path} {e.Message}")))}, " +
                                      $"JsonSchema.Net {(oracleOk ? "accepts" : "rejects")}");
            }
        }
        return (originals, accepted, rejected, disagreements);
    }

    [Fact]
    public void Mutations_cover_every_kind_of_schema_violation()
    {
        var doc = JsonNode.Parse("""{"a": {"n": 3, "s": "x", "b": true, "l": [1, 2]}}""")!;
        var kinds = Mutations(doc).Select(m => m.What.Split(':')[0]).ToHashSet();
        Assert.Superset(new HashSet<string> { "missing key", "unknown key", "wrong type", "out of range", "list size" }, kinds);
    }

    /// <summary>Every single-step mutation of <paramref name="doc"/>, with what it changed.</summary>
    internal static IEnumerable<(string What, JsonNode Doc)> Mutations(JsonNode doc)
    {
        var paths = new List<List<object>>();
        Collect(doc, [], paths);
        foreach (var path in paths)
        {
            var at = "/" + string.Join("/", path);
            var node = Get(doc, path);
            switch (node)
            {
                case JsonObject o:
                    foreach (var key in o.Select(kv => kv.Key).ToList())
                        yield return ($"missing key: {at}/{key}", Edit(doc, path, n => ((JsonObject)n!).Remove(key)));
                    yield return ($"unknown key: {at}", Edit(doc, path, n => ((JsonObject)n!)["zzUnknownKey"] = 1));
                    yield return ($"wrong type: {at} = \"text\"", Replace(doc, path, "text"));
                    break;
                case JsonArray a:
                    yield return ($"list size: {at} = []", Replace(doc, path, new JsonArray()));
                    if (a.Count > 0) yield return ($"list size: {at} + copy", Edit(doc, path, n => ((JsonArray)n!).Add(a[0]?.DeepClone())));
                    yield return ($"wrong type: {at} = {{}}", Replace(doc, path, new JsonObject()));
                    break;
                case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                    foreach (var r in new JsonNode?[] { 7, true, null, new JsonArray(), new JsonObject() })
                        yield return ($"wrong type: {at} = {r?.ToJsonString() ?? "null"}", Replace(doc, path, r));
                    yield return ($"out of range: {at} = \"\"", Replace(doc, path, ""));
                    yield return ($"out of range: {at} = \"ZZ not a value\"", Replace(doc, path, "ZZ not a value"));
                    break;
                case JsonValue v when v.GetValueKind() == JsonValueKind.Number:
                    foreach (var r in new JsonNode?[] { "7", true, null, new JsonArray() })
                        yield return ($"wrong type: {at} = {r?.ToJsonString() ?? "null"}", Replace(doc, path, r));
                    foreach (var r in new[] { -1e12, -1, 0, 0.5, 1, 2.5, 1e12 })
                        yield return ($"out of range: {at} = {r.ToString(CultureInfo.InvariantCulture)}", Replace(doc, path, r));
                    break;
                case JsonValue v:
                    foreach (var r in new JsonNode?[] { "true", 1, null })
                        yield return ($"wrong type: {at} = {r?.ToJsonString() ?? "null"}", Replace(doc, path, r));
                    break;
            }
        }
    }

    private static void Collect(JsonNode? node, List<object> path, List<List<object>> into)
    {
        if (path.Count > 0) into.Add(path);
        if (node is JsonObject o) foreach (var kv in o) Collect(kv.Value, [.. path, kv.Key], into);
        else if (node is JsonArray a) for (int i = 0; i < a.Count; i++) Collect(a[i], [.. path, i], into);
    }

    private static JsonNode? Get(JsonNode? node, List<object> path)
    {
        foreach (var step in path) node = step is string k ? node![k] : node![(int)step];
        return node;
    }

    private static JsonNode Edit(JsonNode doc, List<object> path, Action<JsonNode?> change)
    {
        var copy = doc.DeepClone();
        change(Get(copy, path));
        return copy;
    }

    private static JsonNode Replace(JsonNode doc, List<object> path, JsonNode? value)
    {
        var copy = doc.DeepClone();
        var parent = Get(copy, path[..^1]);
        if (path[^1] is string k) parent![k] = value; else parent![(int)path[^1]] = value;
        return copy;
    }

    /// <summary>The plain data of a parsed policy (<see cref="PolicyNode.ToPlain"/>) as JSON.</summary>
    private static JsonNode? ToJson(object? plain) => plain switch
    {
        null => null,
        IDictionary<string, object?> d => new JsonObject(d.Select(kv => KeyValuePair.Create(kv.Key, ToJson(kv.Value)))),
        string s => JsonValue.Create(s),
        IEnumerable<object?> l => new JsonArray(l.Select(ToJson).ToArray()),
        long n => JsonValue.Create(n),
        int n => JsonValue.Create(n),
        double x => JsonValue.Create(x),
        bool b => JsonValue.Create(b),
        _ => throw new InvalidOperationException($"unexpected plain value {plain.GetType()}"),
    };
}
