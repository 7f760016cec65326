using System.Diagnostics;
using Gate.Core.Checks;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.IO;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Core.Trust;

namespace Gate.Core;

public sealed record GateCheckRequest(string ModelPath, string PolicyPath, string OutDir,
    IReadOnlyDictionary<string, string>? DataOverrides = null, bool ForceGpu = false,
    TrustPolicy? Trust = null, string? ApprovalsFolder = null);

/// <summary>
/// <c>gate check</c> as a library call: policy → plan → sandbox → evidence → decision. Input errors surface as
/// <see cref="GateInputException"/> before anything runs; once checks start, every fault ends in an INCONCLUSIVE
/// check, never an exception and never an APPROVE.
/// </summary>
public sealed class GateCheckPipeline(ISandboxBackend? sandbox)
{
    public async Task<DecisionRecord> RunAsync(GateCheckRequest req, IProgress<ProgressUpdate>? progress = null, CancellationToken ct = default)
    {
        var started = DateTimeOffset.UtcNow;
        progress ??= new Progress<ProgressUpdate>();
        var policy = PolicyLoader.Load(req.PolicyPath, req.DataOverrides);
        // Governance first: an unapproved or modified policy is refused before anything else is read or run.
        var approvals = req.Trust?.RequireApprovals(policy, req.ApprovalsFolder) ?? [];
        var model = OnnxModelLoader.Load(req.ModelPath);
        var plan = CheckPlan.Create(policy, model);

        var evidenceDir = Path.Combine(req.OutDir, "evidence");
        Directory.CreateDirectory(evidenceDir);
        var results = new Dictionary<string, CheckResult>();

        // Host checks read the parsed model only; they never execute it.
        var hostCtx = new CheckContext(model, policy, null, "host checks do not execute the model", new EvidenceWriter(evidenceDir), progress);
        foreach (var pc in plan.HostChecks) results[pc.Spec.Id] = await CheckExecutor.RunOneAsync(hostCtx, pc, ct).ConfigureAwait(false);

        var sandboxChecks = plan.SandboxChecks.ToList();
        string required = IsolationLevels.Name(policy.Spec.Sandbox.Isolation);
        var sandboxInfo = new SandboxInfo(sandbox?.Name ?? "none", sandbox?.AchievedIsolation ?? IsolationLevels.None, required, null, null, null)
            { FallbackReason = sandbox?.FallbackReason };
        Runtime.RuntimeInfo? runtime = null;
        if (sandboxChecks.Count > 0)
        {
            string? refuse = sandbox is null ? "no sandbox backend is available"
                : IsolationLevels.Rank(sandbox.AchievedIsolation) < IsolationLevels.Rank(policy.Spec.Sandbox.Isolation)
                    ? $"the policy requires isolation '{required}' but the sandbox achieved only '{sandbox.AchievedIsolation}'" : null;
            if (refuse is not null)
            {
                foreach (var pc in sandboxChecks) results[pc.Spec.Id] = CheckResult.Inconclusive(pc.Spec, refuse);
                sandboxInfo = sandboxInfo with { Fault = refuse };
            }
            else
            {
                var job = new SandboxJob(Path.GetFullPath(req.ModelPath), model.Sha256, Path.GetFullPath(req.PolicyPath), policy.Sha256,
                    req.DataOverrides ?? new Dictionary<string, string>(), sandboxChecks.Select(c => c.Spec.Id).ToList(),
                    req.ForceGpu || policy.Spec.Sandbox.Gpu != GpuMode.None, policy.Spec.Sandbox.Gpu == GpuMode.Required, policy.Spec.Sandbox.Limits,
                    plan.InputsOf(sandboxChecks));
                SandboxOutcome outcome;
                try { outcome = await sandbox!.RunAsync(job, evidenceDir, progress, ct).ConfigureAwait(false); }
                // Cancellation (SIGINT/SIGTERM) is not a sandbox fault: it ends the run with no decision at all.
                catch (Exception e) when (!(e is OperationCanceledException && ct.IsCancellationRequested)) { outcome = new SandboxOutcome(false, $"sandbox failed: {e.Message}", [], sandbox!.AchievedIsolation, null); }
                runtime = outcome.Runtime;
                sandboxInfo = sandboxInfo with { Isolation = outcome.Isolation, Fault = outcome.FaultReason, SelfTest = outcome.Details?["selfTest"]?.AsObject()?.DeepClone().AsObject(), ImageId = outcome.Details?["imageId"]?.ToString(), Image = outcome.Details?["image"]?.ToString() };
                var byId = outcome.Results.ToDictionary(r => r.Id);
                foreach (var pc in sandboxChecks)
                {
                    if (outcome.Completed && byId.TryGetValue(pc.Spec.Id, out var r)) { r.Enforcement = pc.Spec.Enforcement; results[pc.Spec.Id] = r; }
                    else results[pc.Spec.Id] = CheckResult.Inconclusive(pc.Spec, outcome.FaultReason ?? "the sandbox returned no result for this check");
                }
            }
        }
        foreach (var pc in plan.Checks.Where(c => !c.Runnable))
            results[pc.Spec.Id] = await CheckExecutor.RunOneAsync(hostCtx, pc, ct).ConfigureAwait(false);

        // A check stopped by cancellation reads as INCONCLUSIVE; a cancelled run must end with no decision instead.
        ct.ThrowIfCancellationRequested();
        var ordered = policy.Spec.Checks.Select(c => results[c.Id]).ToList();
        var evidence = EvidenceIndex.Build(evidenceDir, ordered);
        var (decision, reasons) = DecisionRules.Decide(policy.Spec.Decision, ordered);
        return new DecisionRecord
        {
            Decision = decision,
            Reasons = reasons,
            Model = new ArtifactRef(model.FileName, Path.GetFullPath(req.ModelPath), model.Sha256, model.SizeBytes),
            Policy = new ArtifactRef(Path.GetFileName(req.PolicyPath), Path.GetFullPath(req.PolicyPath), policy.Sha256, policy.Bytes.LongLength),
            PolicyName = policy.Metadata.Name,
            Approvals = approvals,
            Gate = DecisionRecord.CurrentGate(),
            Seed = policy.Spec.Seed,
            Datasets = [.. plan.Datasets],
            Runtime = runtime,
            Sandbox = sandboxInfo,
            Checks = ordered,
            Evidence = evidence,
            StartedAt = started,
            EndedAt = DateTimeOffset.UtcNow,
        };
    }

    /// <summary>Writes decision.json atomically (temp file + rename): a reader never sees half a decision.</summary>
    public static string WriteDecision(DecisionRecord record, string outDir)
    {
        Directory.CreateDirectory(outDir);
        var path = Path.Combine(outDir, "decision.json");
        AtomicFile.WriteText(path, record.ToJson());
        return path;
    }
}
