using Gate.Core.Decision;
using Gate.Core.Policy;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Sandbox;

namespace Gate.Sandbox.Backends;

/// <summary>
/// Runs the job in the gate's own process. It isolates nothing, reports isolation "none", and so can never
/// satisfy a policy (every policy requires at least "process"): it exists for tests and for `--sandbox none`
/// debugging, where the outcome is INCONCLUSIVE by construction.
/// </summary>
public sealed class InProcessBackend : ISandboxBackend
{
    public string Name => "in-process";
    public IsolationLevel AchievedIsolation => IsolationLevel.None;

    public async Task<SandboxOutcome> RunAsync(SandboxJob job, string evidenceDir, IProgress<ProgressUpdate> progress, CancellationToken ct)
    {
        Gate.Core.Decision.PassCost? cost = null;
        var (results, runtime) = await SandboxJobExecutor.RunAsync(job, evidenceDir, progress, ct, c => cost = c).ConfigureAwait(false);
        var details = new System.Text.Json.Nodes.JsonObject();
        if (cost is not null) details[SandboxOutcomeDetails.PassCost] = System.Text.Json.JsonSerializer.SerializeToNode(cost, Gate.Core.IO.GateJson.Options);
        return new SandboxOutcome(true, null, results, AchievedIsolation, runtime, details);
    }
}
