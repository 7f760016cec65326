namespace Gate.Core.Policy;

public enum GpuMode { None, Optional, Required }
public enum Enforcement { Blocking, Advisory }
public enum InconclusiveHandling { Inconclusive, Reject }

public sealed record PolicyMetadata(string Name, string? Owner, string? Description, bool Release, IReadOnlyDictionary<string, string> Labels);

/// <summary>A declared model input: shape (-1 = any) and the valid value range adversaries must stay inside.</summary>
public sealed record InputSpec(string Name, long[] Shape, double Min, double Max)
{
    /// <summary>Declared image preprocessing: decode geometry and the normalisation composed into the graph; null when none.</summary>
    public Model.Preprocessing? Preprocess { get; init; }
}

public sealed record ModelSpec(string Format, IReadOnlyList<InputSpec> Inputs, string? Output);

public sealed record ResourceLimits(long MemoryBytes, double Cpus, TimeSpan Timeout, int Pids);

public sealed record SandboxSpec(IsolationLevel Isolation, GpuMode Gpu, ResourceLimits Limits);

/// <summary>
/// A dataset: .npy inputs and optional labels, paths already resolved (relative to the policy, or replaced by a
/// <see cref="DataOverride"/>). A policy may pin the files by SHA-256; a pinned dataset may be overridden only where the policy
/// says <c>allowOverride: true</c> (checked with the digests at plan time, <see cref="Plan.DatasetValidation"/>).
/// </summary>
public sealed record DatasetSpec(string Name, string InputsPath, string? LabelsPath, SourceLocation Location)
{
    /// <summary>The policy's <c>sha256.inputs</c> / <c>sha256.labels</c> (lower-case hex), or null when not pinned.</summary>
    public string? InputsPin { get; init; }
    public string? LabelsPin { get; init; }
    public bool AllowOverride { get; init; }
    /// <summary>The data override that gave the path instead of the policy, as the caller gave it; null for the policy's file.</summary>
    public DataOverride? InputsOverride { get; init; }
    public DataOverride? LabelsOverride { get; init; }
    public bool InputsOverridden => InputsOverride is not null;
    public bool LabelsOverridden => LabelsOverride is not null;
    public bool Pinned => InputsPin is not null || LabelsPin is not null || InputFiles?.Any(f => f.Pin is not null) == true;
    /// <summary>
    /// One .npy per model input (<c>inputs: {input_ids: ids.npy, attention_mask: mask.npy}</c>), in declared order;
    /// null for a single inputs file. <see cref="InputsPath"/> is then the first of them. The host validates and
    /// digests each, and composes them into one .npz that the sandbox reads (<see cref="Plan.DatasetValidation"/>).
    /// </summary>
    public IReadOnlyList<DatasetInputFile>? InputFiles { get; init; }
    /// <summary>The per-input files the inputs are read from: none once a data override replaced the inputs (whose pins still hold).</summary>
    public IReadOnlyList<DatasetInputFile>? FilePerInput => InputsOverridden ? null : InputFiles;
}

/// <summary>One file of a one-file-per-input dataset: the model input it feeds, its resolved path, and its pin (sha256.inputs.INPUT).</summary>
public sealed record DatasetInputFile(string Input, string Path, string? Pin);

/// <summary>
/// A check as declared. Type-specific options stay in <see cref="Node"/> and are bound by the check type that
/// owns them (one check type, one class); the common fields are typed here.
/// </summary>
public sealed record CheckSpec(string Id, string Type, Enforcement Enforcement, string? Dataset, string? Description,
    IReadOnlyDictionary<string, MetricBound> Require, PolicyMapping Node)
{
    public SourceLocation Location => Node.Location;
    public string Path => Node.Path;
}

/// <summary>
/// Which value of an estimated metric a requirement judges: the point estimate, or an end of its confidence
/// interval (<c>bound: lower</c> / <c>upper</c>, at the check's <c>confidence</c>, default 95%).
/// </summary>
public enum Estimate { Point, Lower, Upper }

/// <summary>A requirement on one metric: min and/or max, inclusive, judged on <see cref="Bound"/>.</summary>
public sealed record MetricBound(double? Min, double? Max, SourceLocation Location, Estimate Bound = Estimate.Point)
{
    /// <summary>Metrics reported with a confidence interval (<c>metricLower</c>/<c>metricUpper</c>): the only ones <c>bound</c> applies to.</summary>
    public static readonly IReadOnlySet<string> IntervalMetrics = new HashSet<string> { "accuracy", "robustAccuracy", "attackSuccessRate" };

    public bool Holds(double v) => !double.IsNaN(v) && (Min is null || v >= Min) && (Max is null || v <= Max);

    /// <summary>The metric name under which the judged value is reported: <c>robustAccuracyLower</c> for the lower bound.</summary>
    public string JudgedMetric(string metric) => Bound switch { Estimate.Lower => metric + "Lower", Estimate.Upper => metric + "Upper", _ => metric };

    /// <summary>"lower confidence bound of robustAccuracy" style wording, or the metric itself for the point estimate.</summary>
    public string Describe(string metric) => Bound switch
    {
        Estimate.Lower => $"{metric} (lower confidence bound)",
        Estimate.Upper => $"{metric} (upper confidence bound)",
        _ => metric,
    };

    public override string ToString() => (Min, Max) switch
    {
        ({ } lo, { } hi) => $"in [{lo}, {hi}]",
        ({ } lo, null) => $"≥ {lo}",
        (null, { } hi) => $"≤ {hi}",
        _ => "any",
    };
}

public sealed record DecisionSpec(InconclusiveHandling OnInconclusive);

public sealed record PolicySpec(ModelSpec Model, string Runtime, SandboxSpec Sandbox, ulong Seed,
    IReadOnlyDictionary<string, DatasetSpec> Datasets, IReadOnlyList<CheckSpec> Checks, DecisionSpec Decision)
{
    /// <summary>The white-box engine (gradients, activations): auto, builtin or torch (<see cref="Engine.WhiteBoxEngines"/>).</summary>
    public string Engine { get; init; } = "auto";
}

/// <summary>A validated, bound deployment policy. Produced only by <see cref="PolicyLoader"/>.</summary>
public sealed record DeploymentPolicy(string ApiVersion, string Kind, PolicyMetadata Metadata, PolicySpec Spec)
{
    public required string SourcePath { get; init; }
    /// <summary>SHA-256 (hex) of the exact policy file bytes: what approvals sign and decisions record.</summary>
    public required string Sha256 { get; init; }
    public required PolicyMapping Root { get; init; }
    public required byte[] Bytes { get; init; }
}
