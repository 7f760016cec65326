using System.Text.Json.Nodes;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Tests.Support;

namespace Gate.Tests.Policy;

/// <summary>The JSON Schema and the loader must not drift apart.</summary>
public class PolicySchemaSyncTests
{
    public static TheoryData<string> ExamplePolicies()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "policies"), "*.yaml", SearchOption.AllDirectories).Order())
            data.Add(Path.GetRelativePath(TestPaths.RepoRoot, f));
        return data;
    }

    [Theory]
    [MemberData(nameof(ExamplePolicies))]
    public void Every_example_policy_validates_against_the_schema(string relative)
    {
        var path = Path.Combine(TestPaths.RepoRoot, relative);
        var node = PolicyYamlReader.ReadFile(path);
        Assert.Empty(PolicySchema.V1.Validate(node));
        PolicyLoader.Load(path); // and binds
    }

    /// <summary>
    /// The committed schema is generated: its check part comes from the check types' declarations (defaults, units,
    /// strength, meaning), so it cannot drift from what the binders bind. After changing a declaration, regenerate with
    /// <c>GATE_WRITE_SCHEMA=1 dotnet test Gate.Tests --filter Schema_file_in_repo_is_generated_from_the_check_declarations</c>.
    /// </summary>
    [Fact]
    public void Schema_file_in_repo_is_generated_from_the_check_declarations()
    {
        var path = Path.Combine(TestPaths.RepoRoot, "policies", "schema", "policy-v1.schema.json");
        var generated = PolicySchemaGenerator.Generate(PolicySchema.Embedded, Gate.Core.Policy.CheckTypes.BuiltIn);
        var text = PolicySchemaGenerator.Format(generated);
        if (Environment.GetEnvironmentVariable("GATE_WRITE_SCHEMA") == "1") File.WriteAllText(path, text);
        var file = File.ReadAllText(path);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(file), generated), "policies/schema/policy-v1.schema.json differs from the schema generated from the check declarations; regenerate it (see this test's summary)");
        Assert.Equal(text, file);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(file), PolicySchema.Embedded), "the embedded schema is not the file in the repository");
    }

    [Fact]
    public void Every_object_in_the_schema_is_closed_so_unknown_keys_are_errors()
    {
        var open = new List<string>();
        void Walk(JsonNode? n, string at)
        {
            if (n is JsonObject o)
            {
                bool isObject = o["type"] is JsonValue t && t.GetValue<string>() == "object";
                // An object may instead be closed by its allOf branches (the check type's own definition).
                if (isObject && o["additionalProperties"] is null && o["allOf"] is null) open.Add(at);
                foreach (var kv in o) Walk(kv.Value, $"{at}/{kv.Key}");
            }
            else if (n is JsonArray a) for (int i = 0; i < a.Count; i++) Walk(a[i], $"{at}/{i}");
        }
        Walk(PolicySchema.V1.Root, "#");
        Assert.Empty(open);
    }

    /// <summary>
    /// Every key the binders read (the loader's and each check type's BindOptions), on every example policy, is
    /// declared by the schema for that very mapping: the loader cannot depend on a key the schema does not document.
    /// </summary>
    [Theory]
    [MemberData(nameof(ExamplePolicies))]
    public void Every_key_the_binders_read_is_declared_in_the_schema(string relative)
    {
        var path = Path.Combine(TestPaths.RepoRoot, relative);
        var reads = new List<(PolicyMapping Map, string Key)>();
        PolicyMapping.KeyReadObserver.Value = (m, k) => { lock (reads) reads.Add((m, k)); };
        DeploymentPolicy policy;
        try
        {
            policy = PolicyLoader.Load(path);
            var model = OnnxModelLoader.Load(TestPaths.FixtureModel(policy.Spec.Model.Inputs[0].Name == "obs" ? "absent-supervisor-honest.onnx" : "digits-cnn.onnx"));
            foreach (var check in policy.Spec.Checks)
                Gate.Core.Checks.CheckRegistry.Find(check.Type)?.Bind(check, policy);
        }
        finally { PolicyMapping.KeyReadObserver.Value = null; }
        var declared = PolicySchema.V1.DeclaredKeys(policy.Root);
        var undeclared = reads
            .Where(r => !(declared.TryGetValue(r.Map, out var keys) && keys.Contains(r.Key)) && !IsFreeFormMap(r.Map, policy.Root))
            .Select(r => $"{(r.Map.Path.Length == 0 ? "(root)" : r.Map.Path)}.{r.Key}").Distinct().ToList();
        Assert.True(undeclared.Count == 0, "binders read keys the schema does not declare: " + string.Join(", ", undeclared));
        Assert.NotEmpty(reads);
    }

    // Maps whose keys are user-chosen names (inputs, datasets, labels, scenario conditions) have no fixed key set.
    private static bool IsFreeFormMap(PolicyMapping map, PolicyMapping root) =>
        map.Path is "spec.model.inputs" or "spec.datasets" or "metadata.labels" || map.Path.EndsWith(".conditions", StringComparison.Ordinal);
}
