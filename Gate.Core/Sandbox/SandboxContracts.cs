using Gate.Core.Decision;
using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Runtime;

namespace Gate.Core.Sandbox;

/// <summary>
/// What the host asks a sandbox to do: execute <see cref="Plan"/> (the checks the host bound, with the digests of the
/// policy, the model and every data file) on this model. The runner re-verifies the model's and the data files'
/// digests inside the sandbox and refuses to run on any difference; it never sees the policy file.
/// </summary>
/// <param name="ModelExternalData">The model's external-data files (locations relative to the model's folder).</param>
public sealed record SandboxJob(
    string ModelPath,
    BoundPlan Plan,
    bool UseGpu, bool RequireGpu,
    ResourceLimits Limits,
    IReadOnlyList<string>? ModelExternalData = null)
{
    public string ModelSha256 => Plan.ModelSha256;
    public IReadOnlyList<string> CheckIds => Plan.CheckIds;
}

/// <summary>What came back from a sandbox. A fault (crash, OOM, timeout, bad results) leaves <see cref="Results"/> empty.</summary>
public sealed record SandboxOutcome(
    bool Completed,
    string? FaultReason,
    IReadOnlyList<CheckResult> Results,
    IsolationLevel Isolation,
    RuntimeInfo? Runtime,
    JsonObject? Details = null);

/// <summary>Keys of <see cref="SandboxOutcome.Details"/> that the pipeline reads.</summary>
public static class SandboxOutcomeDetails
{
    /// <summary>The pass cost the sandbox measured before its checks ran (<see cref="Gate.Core.Decision.PassCost"/>), for the plan estimate.</summary>
    public const string PassCost = "passCost";
}

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
