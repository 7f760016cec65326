namespace Gate.Core.Policy;

public enum Isolation { Process = 0, ProcessNetns = 1, Container = 2 }
public enum GpuMode { None, Optional, Required }
public enum Enforcement { Blocking, Advisory }
public enum InconclusiveHandling { Inconclusive, Reject }

public sealed record PolicyMetadata(string Name, string? Owner, string? Description, bool Release, IReadOnlyDictionary<string, string> Labels);

/// <summary>A declared model input: shape (-1 = any) and the valid value range adversaries must stay inside.</summary>
public sealed record InputSpec(string Name, long[] Shape, double Min, double Max);

public sealed record ModelSpec(string Format, IReadOnlyList<InputSpec> Inputs, string? Output);

public sealed record ResourceLimits(long MemoryBytes, double Cpus, TimeSpan Timeout, int Pids);

public sealed record SandboxSpec(Isolation Isolation, GpuMode Gpu, ResourceLimits Limits);

/// <summary>A dataset: .npy inputs and optional labels, paths already resolved (relative to the policy, or overridden).</summary>
public sealed record DatasetSpec(string Name, string InputsPath, string? LabelsPath, SourceLocation Location);

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

/// <summary>A requirement on one metric: min and/or max, inclusive.</summary>
public sealed record MetricBound(double? Min, double? Max, SourceLocation Location)
{
    public bool Holds(double v) => !double.IsNaN(v) && (Min is null || v >= Min) && (Max is null || v <= Max);
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
    IReadOnlyDictionary<string, DatasetSpec> Datasets, IReadOnlyList<CheckSpec> Checks, DecisionSpec Decision);

/// <summary>A validated, bound deployment policy. Produced only by <see cref="PolicyLoader"/>.</summary>
public sealed record DeploymentPolicy(string ApiVersion, string Kind, PolicyMetadata Metadata, PolicySpec Spec)
{
    public required string SourcePath { get; init; }
    /// <summary>SHA-256 (hex) of the exact policy file bytes: what approvals sign and decisions record.</summary>
    public required string Sha256 { get; init; }
    public required PolicyMapping Root { get; init; }
    public required byte[] Bytes { get; init; }
}
