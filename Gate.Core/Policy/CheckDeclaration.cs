using System.Globalization;
using System.Text.Json.Nodes;

namespace Gate.Core.Policy;

/// <summary>What "stronger" means for an option: which way of changing it makes the gate stricter.</summary>
public enum Strength
{
    /// <summary>No rule: a change cannot be shown not to weaken (the governance diff says so and fails closed).</summary>
    Unrated,
    /// <summary>Does not change what the model must demonstrate (tuning, documentation, plot extras).</summary>
    Neutral,
    HigherIsStronger,
    LowerIsStronger,
    /// <summary>An enumeration whose <see cref="OptionDecl.Order"/> lists the values weakest first.</summary>
    Ordered,
}

/// <summary>How a requirement's metric is bounded: a fraction in [0, 1], a count or other value ≥ 0, or anything.</summary>
public enum MetricRange { Any, NonNegative, Fraction }

/// <summary>A metric a check reports and a policy may require (<c>require.NAME</c>).</summary>
public sealed record MetricDecl(string Name, string Meaning, MetricRange Range = MetricRange.Any)
{
    /// <summary>Reported with a confidence interval, so a requirement may judge an end of it (<c>bound: lower</c>).</summary>
    public bool Estimated { get; init; }
}

/// <summary>
/// One option of a check type, declared once: key, value type (a JSON Schema fragment), default, unit, what
/// "stronger" means, and its meaning in words for reviewers. The policy schema, the binders' defaults, the
/// governance diff, review and lint all read this record; none of them keeps its own copy.
/// </summary>
public sealed record OptionDecl(string Key, string Meaning)
{
    /// <summary>The value's JSON Schema (type, bounds, enum, or a <c>$ref</c> into the schema's shared definitions).</summary>
    public JsonObject Type { get; init; } = new();
    /// <summary>The value bound when the key is absent, or null when absence means <see cref="WhenAbsent"/>.</summary>
    public JsonNode? Default { get; init; }
    /// <summary>What an absent key means when there is no default, in words (e.g. "every sample of the dataset").</summary>
    public string? WhenAbsent { get; init; }
    /// <summary>Absence is the weakest reading (no limit, nothing restricted): the diff treats it as the far weak end.</summary>
    public bool AbsentIsUnbounded { get; init; }
    public string? Unit { get; init; }
    /// <summary>
    /// When the policy leaves the option unset, the bound value scales with the model by this rule (e.g. "4 per class
    /// when the model has more than 16 classes"); <see cref="Default"/> is then the floor. Review and diff show the
    /// rule beside the default, and the check records the value it chose and why in the decision.
    /// </summary>
    public string? ScaledWith { get; init; }
    public Strength Strength { get; init; }
    /// <summary>For <see cref="Strength.Ordered"/>: the values, weakest first.</summary>
    public IReadOnlyList<string>? Order { get; init; }
    public bool Required { get; init; }
    /// <summary>A nested mapping's own options.</summary>
    public IReadOnlyList<OptionDecl>? Fields { get; init; }
    /// <summary>A list of mappings: each item's options.</summary>
    public IReadOnlyList<OptionDecl>? ItemFields { get; init; }
    /// <summary>For a list of mappings: the key that names an item, so lists are compared item by item.</summary>
    public string? ItemKey { get; init; }

    /// <summary>The default as parsed JSON (readable as any numeric type, bool or string, like a value read from a file).</summary>
    public JsonNode? DefaultValue => Default is null ? null : JsonNode.Parse(Default.ToJsonString());

    /// <summary>The default in words for review and diff: "64 (default)", or with its rule when it scales with the model.</summary>
    public string? DefaultWords => DefaultText is { } d ? (ScaledWith is { } rule ? $"{d} (default; scaled with the model: rule {rule})" : $"{d} (default)") : null;

    /// <summary>The default as the text a policy would hold, or null.</summary>
    public string? DefaultText => DefaultValue switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonValue v when v.TryGetValue<double>(out var d) => d.ToString(CultureInfo.InvariantCulture),
        var n => n.ToJsonString(),
    };
}

/// <summary>
/// The independent pieces of work a check type does (samples, episodes, properties, layers): a sharded run gives each
/// shard a contiguous range of them, and each unit's randomness derives from the policy seed and its index alone.
/// </summary>
/// <param name="Noun">The unit in words, plural ("samples").</param>
/// <param name="Meaning">What one unit is and how the budget splits, for reviewers and docs.</param>
public sealed record WorkUnits(string Noun, string Meaning);

/// <summary>What a check's budget buys, for lint: work per sample in the budget's unit (the check's own cost model).</summary>
public sealed record BudgetCost(PolicyNode Budget, long Limit, long PerSample, int Rounds, long? Samples, string Unit, string PerSampleSource);

/// <summary>
/// A check type described once, for everything that reads policies: the schema fragment is generated from it, the
/// binders take their defaults from it, and <c>gate policy lint / review / diff</c> are walkers over it. A new
/// check type declares itself here (<see cref="ICheckType"/>) and is found by <see cref="CheckTypes"/>.
/// </summary>
public sealed class CheckDeclaration
{
    /// <summary>The policy's <c>type:</c> value.</summary>
    public required string Type { get; init; }
    /// <summary>What the check tests, in plain language.</summary>
    public required string Purpose { get; init; }
    /// <summary>Why it matters, for reviewers.</summary>
    public string Why { get; init; } = "";
    /// <summary>What a policy without a blocking check of this type leaves untested (review's "not covered"), or null.</summary>
    public string? NotCovered { get; init; }
    /// <summary>Listing order among check types (schema enum, review's gaps).</summary>
    public int Rank { get; init; } = 1000;

    /// <summary>The check can use a model whose outputs are not all tensors (the sequence-of-maps probabilities of a
    /// scikit-learn export): it reads the outputs through ONNX Runtime only and never needs the built-in engine.</summary>
    public bool ReadsNonTensorOutputs { get; init; }

    /// <summary>The check reads a dataset (<c>dataset:</c>); <see cref="NeedsDataset"/> makes it mandatory.</summary>
    public bool UsesDataset { get; init; }
    public bool NeedsDataset { get; init; }
    /// <summary>The dataset must have labels; <see cref="ClassLabels"/>: the labels are classes of the model's output.</summary>
    public bool NeedsLabels { get; init; }
    public bool ClassLabels { get; init; }

    public IReadOnlyList<OptionDecl> Options { get; init; } = [];
    /// <summary>The check's independent work units, so a sharded run splits it; null: it runs whole in shard 0.</summary>
    public WorkUnits? Units { get; init; }
    public IReadOnlyList<MetricDecl> Metrics { get; init; } = [];
    /// <summary>The metric that the shorthand <c>require: { min: x }</c> bounds, or null when the shorthand is not allowed.</summary>
    public string? PrimaryMetric { get; init; }
    public bool RequireMandatory { get; init; }
    /// <summary>The check decides by its own criteria on this spec, so a missing require block is not a lint finding.</summary>
    public Func<PolicyMapping, bool> JudgesItself { get; init; } = _ => false;

    /// <summary>The check's cost model against its budget, for lint (null: no budget, or nothing to say).</summary>
    public Func<CheckSpec, DeploymentPolicy, BudgetCost?>? Cost { get; init; }
    /// <summary>Findings of this type's own that lint adds (a valid setting that is weak), at the node they concern.</summary>
    public Func<CheckSpec, IEnumerable<(PolicyNode At, string Message)>>? Warnings { get; init; }
    /// <summary>
    /// Review sentences on what the check covers, from the spec (wording helpers: <see cref="ReviewWords"/>); null:
    /// review states the data and every declared option with its bound value and meaning.
    /// </summary>
    public Func<CheckSpec, DeploymentPolicy, IEnumerable<string>>? Review { get; init; }
    /// <summary>Requirements the check adds by itself from its options (review lists them after the policy's): the option, and the requirement in words.</summary>
    public Func<CheckSpec, IEnumerable<(string Option, string Requirement)>>? ImpliedRequirements { get; init; }

    /// <summary>Every declared option with its dotted path, nested ones included.</summary>
    public IEnumerable<(string Path, OptionDecl Option)> AllOptions()
    {
        IEnumerable<(string, OptionDecl)> Walk(IReadOnlyList<OptionDecl> level, string prefix)
        {
            foreach (var o in level)
            {
                yield return (prefix + o.Key, o);
                foreach (var x in Walk(o.Fields ?? o.ItemFields ?? [], prefix + o.Key + ".")) yield return x;
            }
        }
        return Walk(Options, "");
    }

    /// <summary>The option declared at a dotted path (e.g. "threat.epsilon"), or null.</summary>
    public OptionDecl? Option(string path)
    {
        IReadOnlyList<OptionDecl>? level = Options;
        OptionDecl? found = null;
        foreach (var part in path.Split('.'))
        {
            found = level?.FirstOrDefault(o => o.Key == part);
            if (found is null) return null;
            level = found.Fields ?? found.ItemFields;
        }
        return found;
    }

    /// <summary>The option's value as the policy holds it, else its declared default; null when neither.</summary>
    public OptionValue Value(PolicyMapping node, string key)
    {
        var decl = Option(key) ?? throw new InvalidOperationException($"check type '{Type}' declares no option '{key}'");
        var parts = key.Split('.');
        PolicyNode? cur = node;
        foreach (var p in parts) cur = (cur as PolicyMapping)?[p];
        return new OptionValue(decl, cur);
    }

    /// <summary>A nested option (e.g. "scenarios.episodes" of one scenario) as given by <paramref name="given"/>, else its default.</summary>
    public OptionValue ValueAt(string path, PolicyNode? given) =>
        new(Option(path) ?? throw new InvalidOperationException($"check type '{Type}' declares no option '{path}'"), given);

    /// <summary>The number of samples the check works on: explicit, the declared default (a cap), or null for the whole dataset.</summary>
    public long? Samples(PolicyMapping node) =>
        Option("samples") is null ? null : Value(node, "samples") is { Number: { } n } ? (long)n : null;

    /// <summary>The sample count in words for reviewers: "64 (default, fewer if the dataset is smaller)", "200", or the absent meaning.</summary>
    public string SamplesWords(PolicyMapping node, string noun)
    {
        if (node["indices"] is PolicySequence idx) return $"{idx.Items.Count} chosen {noun}";
        if (Option("samples") is null) return $"every {noun.TrimEnd('s')}";
        var v = Value(node, "samples");
        string n = v.Number is { } k ? ((long)k).ToString("N0", CultureInfo.InvariantCulture) : "";
        if (v.Explicit is not null) return $"{n} {noun}";
        return v.Number is null ? $"every {noun.TrimEnd('s')}"
            : $"up to {n} {noun} (default{(v.Decl.ScaledWith is { } rule ? $"; scaled with the model: rule {rule}" : "")})";
    }
}

/// <summary>An option as a spec gives it: the explicit node, or the declaration's default.</summary>
public readonly record struct OptionValue(OptionDecl Decl, PolicyNode? Explicit)
{
    public bool IsDefault => Explicit is null;
    public double? Number => Explicit is PolicyScalar { IsNumber: true } s ? s.AsDouble()
        : Explicit is null && Decl.DefaultValue is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;
    public int? Int => Number is { } n ? (int)Math.Min(n, int.MaxValue) : null;
    public string? Text => Explicit is PolicyScalar s ? PolicyLoader.Str(s) : Explicit is null ? Decl.DefaultText : null;
    public bool? Bool => Explicit is PolicyScalar { Kind: ScalarKind.Bool } s ? s.AsBool()
        : Explicit is null && Decl.DefaultValue is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;
    /// <summary>A duration option (e.g. "5m"); validated at the option's line.</summary>
    public TimeSpan? Duration => Explicit is PolicyScalar s ? PolicyLoader.ParseDuration(s)
        : Decl.DefaultText is { } t ? PolicyLoader.ParseDuration(t) : null;
}

/// <summary>Implemented by every check type: its declaration, the one description of its options.</summary>
public interface ICheckType
{
    CheckDeclaration Declaration { get; }
}

/// <summary>Builders for option declarations, so that a check's option list reads like a table.</summary>
public static class Opt
{
    private static JsonObject T(string type) => new() { ["type"] = type };
    private static JsonObject Ref(string def) => new() { ["$ref"] = $"#/$defs/{def}" };

    public static OptionDecl Int(string key, string meaning, long min = 1, long max = int.MaxValue) =>
        new(key, meaning) { Type = new JsonObject { ["type"] = "integer", ["minimum"] = min, ["maximum"] = max } };
    public static OptionDecl Number(string key, string meaning, double? min = null, double? exclusiveMin = null, double? max = null, double? exclusiveMax = null)
    {
        var t = T("number");
        if (min is { } a) t["minimum"] = a;
        if (exclusiveMin is { } b) t["exclusiveMinimum"] = b;
        if (max is { } c) t["maximum"] = c;
        if (exclusiveMax is { } d) t["exclusiveMaximum"] = d;
        return new(key, meaning) { Type = t };
    }
    public static OptionDecl Bool(string key, string meaning) => new(key, meaning) { Type = T("boolean") };
    public static OptionDecl Text(string key, string meaning) => new(key, meaning) { Type = T("string") };
    public static OptionDecl Enum(string key, string meaning, params string[] values) =>
        new(key, meaning) { Type = new JsonObject { ["enum"] = new JsonArray(values.Select(v => (JsonNode)v).ToArray()) } };
    public static OptionDecl Duration(string key, string meaning) => new(key, meaning) { Type = Ref("duration"), Unit = "duration", Strength = Strength.HigherIsStronger };
    public static OptionDecl Names(string key, string meaning) =>
        new(key, meaning) { Type = new JsonObject { ["type"] = "array", ["items"] = T("string") } };
    public static OptionDecl Shared(string key, string meaning, string def) => new(key, meaning) { Type = Ref(def) };
    public static OptionDecl Mapping(string key, string meaning, params OptionDecl[] fields) => new(key, meaning) { Fields = fields };
    public static OptionDecl ListOf(string key, string meaning, string? itemKey, params OptionDecl[] fields) =>
        new(key, meaning) { ItemFields = fields, ItemKey = itemKey };

    /// <summary>The common <c>samples</c> option: how many samples of the dataset (the first N, or a seeded choice).</summary>
    public static OptionDecl Samples(string meaning, long? defaultCap = null) =>
        new("samples", meaning)
        {
            Type = Ref("samples"), Unit = "samples", Strength = Strength.HigherIsStronger,
            Default = defaultCap is { } d ? JsonValue.Create(d) : null,
            WhenAbsent = defaultCap is null ? "every sample of the dataset" : null, AbsentIsUnbounded = defaultCap is null,
        };
    public static OptionDecl Dataset(string meaning = "The dataset (spec.datasets) the check reads.") => Text("dataset", meaning);
}
