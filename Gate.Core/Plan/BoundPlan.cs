using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Gate.Core.IO;
using Gate.Core.Checks;
using Gate.Core.Decision;
using Gate.Core.Policy;

namespace Gate.Core.Plan;

/// <summary>A dataset as the plan hands it to a sandbox: its files and the SHA-256 each had when the host planned.</summary>
public sealed record BoundDataset(string Name, string InputsPath, string InputsSha256, string? LabelsPath, string? LabelsSha256);

/// <summary>
/// One check as bound on the host: its identity and requirements, why it is not run (if so), and its bound options
/// as JSON in the shape of its type's options record (<see cref="ICheck.OptionsType"/>).
/// </summary>
public sealed record BoundCheck(string Id, string Type, Enforcement Enforcement, string? Dataset, string? Description,
    IReadOnlyDictionary<string, MetricBound> Require, SourceLocation Location, string Path, string? NotRunReason, JsonElement Options);

/// <summary>
/// The contract between the host and a sandbox: the plan the host bound once, typed, with the digests of the policy
/// and model it was bound from and of every data file it reads. It crosses the boundary as JSON (job.json); the
/// runner re-verifies every digest against the files it was given and executes exactly this plan. No YAML crosses,
/// and nothing is parsed or bound a second time.
/// </summary>
public sealed record BoundPlan
{
    public required string PolicySha256 { get; init; }
    public required string PolicyName { get; init; }
    public required string ModelSha256 { get; init; }
    public required ModelSpec Model { get; init; }
    public required string Runtime { get; init; }
    /// <summary>The policy's white-box engine (auto, builtin, torch).</summary>
    public string Engine { get; init; } = "auto";
    public required ulong Seed { get; init; }
    /// <summary>The datasets these checks read (after data overrides), by name.</summary>
    public required IReadOnlyDictionary<string, BoundDataset> Datasets { get; init; }
    public required IReadOnlyList<BoundCheck> Checks { get; init; }
    /// <summary>The sandbox's wall time (<c>sandbox.limits.timeout</c>): the budget of a check with none of its own
    /// when the sandbox estimates the checks before running them (<see cref="CostEstimator.BeforeRun"/>); zero: unknown.</summary>
    public TimeSpan WallTime { get; init; }
    /// <summary>Which shard of the job this plan runs (<see cref="ShardSelection.Whole"/> unless split).</summary>
    public ShardSelection Shard { get; init; } = ShardSelection.Whole;

    public IReadOnlyList<string> CheckIds => Checks.Select(c => c.Id).ToList();

    /// <summary>No checks and no inputs: what a job that executes nothing (a self-test) carries.</summary>
    public static BoundPlan Empty { get; } = new()
    {
        PolicySha256 = "", PolicyName = "", ModelSha256 = "", Model = new ModelSpec("onnx", [], null), Runtime = "builtin", Seed = 0,
        Datasets = new Dictionary<string, BoundDataset>(), Checks = [],
    };

    /// <summary>
    /// The JSON form: the decision record's options (named floats), public fields included (tuples), and nothing of
    /// the policy's YAML tree — a bound option keeps a node only to place bind-time errors, never to run.
    /// </summary>
    public static JsonSerializerOptions Json { get; } = new(GateJson.Options)
    {
        WriteIndented = false,
        IncludeFields = true,
        Converters = { new ReadOnlySetConverter() },
        TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { DropPolicyNodes } },
    };

    private static void DropPolicyNodes(JsonTypeInfo info)
    {
        if (info.Kind != JsonTypeInfoKind.Object) return;
        foreach (var p in info.Properties)
            if (typeof(PolicyNode).IsAssignableFrom(p.PropertyType)) { p.ShouldSerialize = (_, _) => false; p.Set = null; }
    }

    /// <summary>Binds nothing: records what <paramref name="plan"/> bound for <paramref name="checks"/>, with the digests of what they read.</summary>
    public static BoundPlan Of(CheckPlan plan, IEnumerable<PlannedCheck> checks)
    {
        var list = checks.ToList();
        var digests = plan.Datasets.ToDictionary(d => d.Name, StringComparer.Ordinal);
        var datasets = new Dictionary<string, BoundDataset>(StringComparer.Ordinal);
        foreach (var ds in plan.InputsOf(list).Datasets)
        {
            var record = digests.GetValueOrDefault(ds.Name)
                ?? throw new InvalidOperationException($"dataset '{ds.Name}' was not validated at plan time");
            // Decoded images travel as the .npy the host decoded them into (and digested): the sandbox never decodes.
            datasets[ds.Name] = new BoundDataset(ds.Name, record.Inputs.Materialized ?? ds.InputsPath, record.Inputs.Sha256,
                record.Labels?.Materialized ?? ds.LabelsPath, record.Labels?.Sha256);
        }
        return new BoundPlan
        {
            PolicySha256 = plan.Policy.Sha256, PolicyName = plan.Policy.Metadata.Name, ModelSha256 = plan.Model.Sha256,
            Model = plan.Policy.Spec.Model, Runtime = plan.Policy.Spec.Runtime, Engine = plan.Policy.Spec.Engine, Seed = plan.Policy.Spec.Seed,
            WallTime = plan.Policy.Spec.Sandbox.Limits.Timeout, Datasets = datasets,
            Checks = list.Select(c => new BoundCheck(c.Spec.Id, c.Spec.Type, c.Spec.Enforcement, c.Spec.Dataset, c.Spec.Description,
                c.Spec.Require, c.Spec.Location, c.Spec.Path, c.NotRunReason,
                c.Options is null ? default : WriteOptions(c.Options))).ToList(),
        };
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Bound options as JSON, in the shape of their own record (whatever type the check's binder returns).</summary>
    public static JsonElement WriteOptions(object options) => JsonSerializer.SerializeToElement(options, options.GetType(), Json);

    /// <summary>Bound options read back as <paramref name="check"/>'s options type; malformed → <see cref="InvalidDataException"/>.</summary>
    public static object ReadOptions(ICheck check, string checkId, JsonElement options)
    {
        try
        {
            return options.Deserialize(check.OptionsType, Json) ?? throw new InvalidDataException($"the plan gives check '{checkId}' no options");
        }
        catch (JsonException e) { throw new InvalidDataException($"the plan's options for check '{checkId}' are malformed: {e.Message}"); }
    }

    public static BoundPlan FromJson(string json) =>
        JsonSerializer.Deserialize<BoundPlan>(json, Json) ?? throw new InvalidDataException("the plan is empty (null)");

    /// <summary>The same plan with every data file somewhere else (staging relocates them into the job folder).</summary>
    public BoundPlan WithDataAt(Func<BoundDataset, (string Inputs, string? Labels)> place) => this with
    {
        Datasets = Datasets.ToDictionary(kv => kv.Key, kv =>
        {
            var (inputs, labels) = place(kv.Value);
            return kv.Value with { InputsPath = inputs, LabelsPath = labels };
        }, StringComparer.Ordinal),
    };

    /// <summary>
    /// What an executor runs: the policy's typed parts the checks read (no YAML tree: <see cref="DeploymentPolicy.Root"/>
    /// is empty) and each check with its options read back as its type's record. Every data file, resolved by
    /// <paramref name="resolve"/>, must still have its planned SHA-256: otherwise <see cref="InvalidDataException"/>
    /// and nothing runs.
    /// </summary>
    public (DeploymentPolicy Policy, IReadOnlyList<PlannedCheck> Checks) Executable(Func<string, string> resolve)
    {
        var datasets = new Dictionary<string, DatasetSpec>(StringComparer.Ordinal);
        foreach (var (name, ds) in Datasets)
        {
            var inputs = Verified(resolve(ds.InputsPath), ds.InputsSha256, $"dataset '{name}' inputs");
            string? labels = null;
            if (ds.LabelsPath is not null)
                labels = Verified(resolve(ds.LabelsPath), ds.LabelsSha256 ?? throw new InvalidDataException($"the plan gives dataset '{name}' labels without a digest"), $"dataset '{name}' labels");
            datasets[name] = new DatasetSpec(name, inputs, labels, default);
        }
        var specs = Checks.Select(c => new CheckSpec(c.Id, c.Type, c.Enforcement, c.Dataset, c.Description, c.Require,
            new PolicyMapping { Entries = [], Location = c.Location, Path = c.Path })).ToList();
        var planned = Checks.Zip(specs, (c, spec) =>
        {
            var impl = CheckRegistry.Find(c.Type);
            object? options = impl is null || c.Options.ValueKind == JsonValueKind.Undefined ? null : ReadOptions(impl, c.Id, c.Options);
            return new PlannedCheck(spec, options is null ? null : impl, options) { NotRunReason = c.NotRunReason };
        }).ToList();
        var policy = new DeploymentPolicy("gate/v1", "DeploymentPolicy",
            new PolicyMetadata(PolicyName, null, null, false, new Dictionary<string, string>()),
            new PolicySpec(Model, Runtime, new SandboxSpec(IsolationLevel.Container, GpuMode.None, new ResourceLimits(0, 0, TimeSpan.Zero, 0)),
                Seed, datasets, specs, new DecisionSpec(InconclusiveHandling.Inconclusive)) { Engine = Engine })
        {
            SourcePath = "(bound plan)", Sha256 = PolicySha256, Bytes = [],
            Root = new PolicyMapping { Entries = [], Location = new SourceLocation("(bound plan)", 1, 1), Path = "" },
        };
        return (policy, planned);
    }

    /// <summary>The file's path when its SHA-256 is the planned one; a changed or swapped file stops the job.</summary>
    private static string Verified(string path, string sha256, string what)
    {
        string actual;
        using (var f = File.OpenRead(path)) actual = Convert.ToHexStringLower(SHA256.HashData(f));
        if (!string.Equals(actual, sha256, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"{what} ({Path.GetFileName(path)}): SHA-256 {actual} differs from the plan's {sha256}; the file changed after it was planned");
        return path;
    }

    /// <summary>Reads IReadOnlySet&lt;T&gt; (bound option sets) as a HashSet; writes it as an array.</summary>
    private sealed class ReadOnlySetConverter : JsonConverterFactory
    {
        public override bool CanConvert(Type t) => t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IReadOnlySet<>);

        public override JsonConverter CreateConverter(Type t, JsonSerializerOptions options) =>
            (JsonConverter)Activator.CreateInstance(typeof(SetOf<>).MakeGenericType(t.GetGenericArguments()[0]))!;

        private sealed class SetOf<T> : JsonConverter<IReadOnlySet<T>>
        {
            public override IReadOnlySet<T>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
                JsonSerializer.Deserialize<List<T>>(ref reader, options) is { } items ? new HashSet<T>(items) : null;

            public override void Write(Utf8JsonWriter writer, IReadOnlySet<T> value, JsonSerializerOptions options) =>
                JsonSerializer.Serialize(writer, value.ToList(), options);
        }
    }
}
