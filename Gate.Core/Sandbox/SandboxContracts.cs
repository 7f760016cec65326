using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Policy;
using Gate.Core.Runtime;

namespace Gate.Core.Sandbox;

/// <summary>
/// What the host asks a sandbox to do: run these checks of this policy on this model. The runner re-reads the
/// policy and model inside the sandbox and refuses to run if their digests differ from what the host planned.
/// </summary>
public sealed record SandboxJob(
    string ModelPath, string ModelSha256,
    string PolicyPath, string PolicySha256,
    IReadOnlyDictionary<string, string> DataOverrides,
    IReadOnlyList<string> CheckIds,
    bool UseGpu, bool RequireGpu,
    ResourceLimits Limits,
    SandboxInputs? Inputs = null);

/// <summary>
/// The files a sandbox job reads besides the model and the policy, from the bound plan: the datasets its checks use
/// (after <c>--data</c> overrides), the files their bound options declare (<see cref="IReadsInputFiles"/>), and the
/// model's external-data files (locations relative to the model's folder). Staging copies exactly these — nothing
/// is found by looking at what policy strings happen to name.
/// </summary>
public sealed record SandboxInputs(IReadOnlyList<DatasetSpec> Datasets, IReadOnlyList<string> Files, IReadOnlyList<string> ModelExternalData)
{
    public static readonly SandboxInputs None = new([], [], []);
}

/// <summary>What came back from a sandbox. A fault (crash, OOM, timeout, bad results) leaves <see cref="Results"/> empty.</summary>
public sealed record SandboxOutcome(
    bool Completed,
    string? FaultReason,
    IReadOnlyList<CheckResult> Results,
    IsolationLevel Isolation,
    RuntimeInfo? Runtime,
    JsonObject? Details = null);

/// <summary>A way to execute a <see cref="SandboxJob"/> (Docker container, child process, or in-process for tests).</summary>
public interface ISandboxBackend
{
    string Name { get; }
    /// <summary>The isolation this backend would achieve on this host right now.</summary>
    IsolationLevel AchievedIsolation { get; }
    /// <summary>Why this backend was chosen over a stronger one (auto's fallback), recorded in decision.json; null when not a fallback.</summary>
    string? FallbackReason => null;
    Task<SandboxOutcome> RunAsync(SandboxJob job, string evidenceDir, IProgress<ProgressUpdate> progress, CancellationToken ct);
}
