using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Runtime;

namespace Gate.Core.Sandbox;

/// <summary>
/// The work done inside a sandbox: re-load policy and model, refuse if either differs from what the host planned,
/// open the production runtime, run the requested checks, return their results. Used by the runner program and
/// by the in-process backend alike, so every backend executes identical code.
/// </summary>
public static class SandboxJobExecutor
{
    public static async Task<(List<CheckResult> Results, RuntimeInfo? Runtime)> RunAsync(SandboxJob job, string evidenceDir,
        IProgress<ProgressUpdate> progress, CancellationToken ct)
    {
        var policy = PolicyLoader.Load(job.PolicyPath, job.DataOverrides);
        if (policy.Sha256 != job.PolicySha256) throw new InvalidDataException($"policy digest changed between planning and execution ({job.PolicySha256} → {policy.Sha256})");
        var model = OnnxModelLoader.Load(job.ModelPath);
        if (model.Sha256 != job.ModelSha256) throw new InvalidDataException($"model digest changed between planning and execution ({job.ModelSha256} → {model.Sha256})");
        var plan = CheckPlan.Create(policy, model);
        var (session, reason) = ProductionRuntime.Open(policy, model, new RuntimeOptions(job.UseGpu, job.RequireGpu));
        try
        {
            var ctx = new CheckContext(model, policy, session, reason, new EvidenceWriter(evidenceDir), progress);
            var wanted = new HashSet<string>(job.CheckIds);
            var results = await CheckExecutor.RunAllAsync(ctx, plan.Checks.Where(c => wanted.Contains(c.Spec.Id)), ct).ConfigureAwait(false);
            return (results, session?.Info);
        }
        finally { session?.Dispose(); }
    }
}
