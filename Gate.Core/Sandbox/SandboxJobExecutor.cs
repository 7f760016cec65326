using Gate.Core.Decision;
using Gate.Core.Checks;
using Gate.Core.Engine;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Runtime;

namespace Gate.Core.Sandbox;

/// <summary>
/// The work done inside a sandbox: load the model and refuse if it, or any data file, differs from what the host
/// planned; open the production runtime; run the bound plan's checks as bound (no policy is read or bound here);
/// return their results. Used by the runner program and by the in-process backend alike, so every backend executes
/// identical code.
/// </summary>
public static class SandboxJobExecutor
{
    /// <summary>
    /// A job executed where it stands (the in-process backend, tests): its plan goes through JSON first, like every
    /// job that crosses into a sandbox, so what runs is what a runner would have received.
    /// </summary>
    public static Task<(List<CheckResult> Results, RuntimeInfo? Runtime)> RunAsync(SandboxJob job, string evidenceDir,
        IProgress<ProgressUpdate> progress, CancellationToken ct, Action<PassCost>? measured = null) =>
        RunAsync(BoundPlan.FromJson(job.Plan.ToJson()), job.ModelPath, path => path, job.UseGpu, job.RequireGpu, evidenceDir, progress, ct, measured);

    /// <param name="modelPath">The model file as given to the sandbox.</param>
    /// <param name="resolve">Where the plan's data paths are in this sandbox (the job folder for the runner).</param>
    /// <param name="measured">Told the measured pass cost (<see cref="CostEstimator.TryMeasure"/>) before the checks run, for the host's estimate.</param>
    public static async Task<(List<CheckResult> Results, RuntimeInfo? Runtime)> RunAsync(BoundPlan plan, string modelPath, Func<string, string> resolve,
        bool useGpu, bool requireGpu, string evidenceDir, IProgress<ProgressUpdate> progress, CancellationToken ct, Action<PassCost>? measured = null)
    {
        var model = OnnxModelLoader.Load(modelPath);
        if (model.Sha256 != plan.ModelSha256) throw new InvalidDataException($"model digest changed between planning and execution ({plan.ModelSha256} → {model.Sha256})");
        // The model as judged takes pixels: the declared normalisation is composed into its graph, so both runtimes
        // run it and every gradient flows through it (Preprocessing). The digest checked above is the file's.
        model = Preprocessing.Compose(model, plan.Model.Inputs.Where(i => i.Preprocess is not null).Select(i => (i.Name, i.Preprocess!)));
        var (policy, checks) = plan.Executable(resolve);
        var (session, reason) = ProductionRuntime.Open(policy, model, new RuntimeOptions(useGpu, requireGpu));
        try
        {
            var ctx = new CheckContext(model, policy, session, reason, new EvidenceWriter(evidenceDir), progress, new GpuRequest(useGpu, requireGpu));
            // Before any check runs: one measured pass gives each check's estimate, shown to the user, and a check
            // estimated past its budget is INCONCLUSIVE at once instead of spending the budget (issue #17).
            if (CostEstimator.TryMeasure(ctx, checks) is { } cost)
            {
                measured?.Invoke(cost);
                checks = CostEstimator.BeforeRun(ctx, checks, cost, plan.WallTime, plan.Shard.IsWhole).Checks;
            }
            var results = await CheckExecutor.RunAllAsync(ctx, checks, ct, plan.Shard).ConfigureAwait(false);
            // The white-box engine is recorded beside the production runtime (the host has no other way to learn it).
            var info = session?.Info ?? (ctx.EngineChoice is null ? null : new RuntimeInfo("none", "", "", "", reason));
            return (results, info is null ? null : info with { WhiteBox = ctx.EngineChoice });
        }
        finally { session?.Dispose(); }
    }
}
