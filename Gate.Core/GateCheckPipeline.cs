using System.Text.Json;
using System.Diagnostics;
using Gate.Core.Attestation;
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

/// <param name="OutDir">For <see cref="GateCheckPipeline.CheckAsync"/>, the output folder (committed as one set);
/// for <see cref="GateCheckPipeline.RunAsync"/>, where evidence is written.</param>
/// <param name="TrustPath">A trust file read (after the output folder is cleared) when <paramref name="Trust"/> is not given.</param>
/// <param name="SigningKeyPath">Sign the decision with this private key (PKCS#8 PEM); null: unsigned.</param>
/// <param name="Executor">Where the sandbox checks run split into shards (local cores, Slurm); null: one sandbox job here.</param>
public sealed record GateCheckRequest(string ModelPath, string PolicyPath, string OutDir,
    IReadOnlyDictionary<string, string>? DataOverrides = null, bool ForceGpu = false,
    TrustPolicy? Trust = null, string? ApprovalsFolder = null,
    string? TrustPath = null, string? SigningKeyPath = null, IShardExecutor? Executor = null);

/// <summary>What a whole <c>gate check</c> produced: the decision and the files committed for it.</summary>
/// <param name="SignedBy">The key id of the signing key; null when the decision is unsigned.</param>
public sealed record GateCheckOutcome(DecisionRecord Record, WrittenOutputs Written, string? SignedBy);

/// <summary>
/// <c>gate check</c> as a library call: <see cref="CheckAsync"/> is the whole job (output folder, policy → plan →
/// sandbox → evidence → decision → report, JUnit, summary and signed attestation, committed as one set);
/// <see cref="RunAsync"/> is its deciding part alone. Input errors surface as
/// <see cref="GateInputException"/> before anything runs; once checks start, every fault ends in an INCONCLUSIVE
/// check, never an exception and never an APPROVE.
/// </summary>
public sealed class GateCheckPipeline
{
    private readonly Func<IsolationLevel, ISandboxBackend?> _selectSandbox;

    /// <summary>A pipeline that runs sandbox checks in <paramref name="sandbox"/> (null: they are INCONCLUSIVE).</summary>
    public GateCheckPipeline(ISandboxBackend? sandbox) => _selectSandbox = _ => sandbox;

    /// <summary>
    /// A pipeline that picks its backend once the policy's isolation floor is known, before any check runs; the
    /// selector throws <see cref="GateInputException"/> when it can offer nothing that meets the floor.
    /// </summary>
    public static GateCheckPipeline Selecting(Func<IsolationLevel, ISandboxBackend?> selectSandbox) => new(selectSandbox);

    private GateCheckPipeline(Func<IsolationLevel, ISandboxBackend?> selectSandbox) => _selectSandbox = selectSandbox;

    /// <summary>
    /// Everything <c>gate check</c> does: lock and clear the output folder first (an earlier run's results leave it
    /// before anything can fail), read the key and trust file, decide, then write decision.json, report.html,
    /// summary.md, junit.xml and (with a key) the attestation, and place them as one set (<see cref="OutputSet"/>).
    /// A failure or cancellation leaves none of this run's files.
    /// </summary>
    /// <param name="notice">Told what the user should know that is not progress (e.g. a dead run's leftovers were removed).</param>
    public async Task<GateCheckOutcome> CheckAsync(GateCheckRequest req, IProgress<ProgressUpdate>? progress = null,
        Action<string>? notice = null, CancellationToken ct = default)
    {
        using var output = OutputSet.Open(req.OutDir);
        if (output.TookOverFrom is { } previous)
            notice?.Invoke($"{output.OutDir} was left by a gate run that did not finish ({previous}); its partial outputs were removed");
        // Keys and trust are read before anything runs, so a bad key is bad input, not a lost run.
        using var key = req.SigningKeyPath is { } k ? SigningKey.Load(k) : null;
        var trust = req.Trust ?? (req.TrustPath is { } t ? TrustPolicy.Load(t) : null);
        var record = await RunAsync(req with { OutDir = output.WorkDir, Trust = trust }, progress, ct, notice).ConfigureAwait(false);
        ct.ThrowIfCancellationRequested(); // cancelled after the last check: still no decision
        // The private key is used only here, on the host, after the sandbox has returned.
        var written = output.Commit(record, key);
        return new GateCheckOutcome(record, written, key?.KeyId);
    }

    public async Task<DecisionRecord> RunAsync(GateCheckRequest req, IProgress<ProgressUpdate>? progress = null, CancellationToken ct = default, Action<string>? notice = null)
    {
        var started = DateTimeOffset.UtcNow;
        progress ??= new Progress<ProgressUpdate>();
        var policy = PolicyLoader.Load(req.PolicyPath, req.DataOverrides);
        // Governance first: an unapproved or modified policy is refused before anything else is read or run.
        var approvals = req.Trust?.RequireApprovals(policy, req.ApprovalsFolder) ?? [];
        var model = OnnxModelLoader.Load(req.ModelPath);
        var plan = CheckPlan.Create(policy, model);
        foreach (var note in plan.Notes) notice?.Invoke(note);

        var sandboxChecks = plan.SandboxChecks.ToList();
        // Chosen before anything runs, so a host that cannot meet the policy's floor fails early with the reason;
        // a plan with nothing to sandbox needs no backend (and probes none).
        var floor = policy.Spec.Sandbox.Isolation;
        // One local shard is today's single sandbox job; anything else goes through the executor and the shard merge.
        var executor = req.Executor is { Shards: > 1 } or { UsesHostSandbox: false } ? req.Executor : null;
        var sandbox = sandboxChecks.Count > 0 && (executor?.UsesHostSandbox ?? true) ? _selectSandbox(floor) : null;
        ExecutionInfo? execution = null;

        var evidenceDir = Path.Combine(req.OutDir, "evidence");
        Directory.CreateDirectory(evidenceDir);
        var results = new Dictionary<string, CheckResult>();

        // Host checks read the parsed model only; they never execute it.
        var hostCtx = new CheckContext(model, policy, null, "host checks do not execute the model", new EvidenceWriter(evidenceDir), progress);
        foreach (var pc in plan.HostChecks) results[pc.Spec.Id] = await CheckExecutor.RunOneAsync(hostCtx, pc, ct).ConfigureAwait(false);

        var sandboxInfo = new SandboxInfo(sandbox?.Name ?? "none", sandbox?.AchievedIsolation ?? IsolationLevel.None, floor, null, null, null)
            { FallbackReason = sandbox?.FallbackReason };
        Runtime.RuntimeInfo? runtime = null;
        if (sandboxChecks.Count > 0)
        {
            string? refuse = executor is { UsesHostSandbox: false } ? null
                : sandbox is null ? "no sandbox backend is available"
                : !sandbox.AchievedIsolation.Meets(floor)
                    ? $"the policy requires isolation '{floor.Name()}' but the sandbox achieved only '{sandbox.AchievedIsolation.Name()}'" : null;
            if (refuse is not null)
            {
                foreach (var pc in sandboxChecks) results[pc.Spec.Id] = CheckResult.Inconclusive(pc.Spec, refuse);
                sandboxInfo = sandboxInfo with { Fault = refuse };
            }
            else if (executor is not null)
            {
                var job = JobFor(plan, sandboxChecks, req.ModelPath, req.ForceGpu);
                (runtime, sandboxInfo, execution) = await RunShardsAsync(executor, job, sandbox, sandboxChecks, hostCtx, evidenceDir, sandboxInfo, floor, results, progress, ct).ConfigureAwait(false);
            }
            else
            {
                // The plan as bound here is what the sandbox executes: it never reads the policy itself.
                var job = JobFor(plan, sandboxChecks, req.ModelPath, req.ForceGpu);
                SandboxOutcome outcome;
                try { outcome = await sandbox!.RunAsync(job, evidenceDir, progress, ct).ConfigureAwait(false); }
                // Cancellation (SIGINT/SIGTERM) is not a sandbox fault: it ends the run with no decision at all.
                catch (Exception e) when (!(e is OperationCanceledException && ct.IsCancellationRequested)) { outcome = new SandboxOutcome(false, $"sandbox failed: {e.Message}", [], sandbox!.AchievedIsolation, null); }
                runtime = outcome.Runtime;
                sandboxInfo = sandboxInfo with { Isolation = outcome.Isolation, Fault = outcome.FaultReason, SelfTest = outcome.Details?["selfTest"]?.AsObject()?.DeepClone().AsObject(), ImageId = outcome.Details?["imageId"]?.ToString(), Image = outcome.Details?["image"]?.ToString(),
                    Estimate = EstimateFrom(outcome, plan, sandboxChecks) };
                if (sandboxInfo.Estimate is { } estimate) foreach (var line in estimate.Lines()) notice?.Invoke($"estimate: {line}");
                var byId = outcome.Results.ToDictionary(r => r.Id);
                foreach (var pc in sandboxChecks)
                {
                    if (outcome.Completed && byId.TryGetValue(pc.Spec.Id, out var r)) { r.Enforcement = pc.Spec.Enforcement; results[pc.Spec.Id] = r; }
                    else results[pc.Spec.Id] = CheckResult.Inconclusive(pc.Spec, outcome.FaultReason ?? "the sandbox returned no result for this check");
                }
            }
        }
        // What the plan noted about how the model is run belongs to every measurement on data it qualifies.
        foreach (var note in plan.Notes)
            foreach (var pc in sandboxChecks.Where(c => c.Spec.Dataset is not null && results.ContainsKey(c.Spec.Id)))
                results[pc.Spec.Id].Coverage = string.IsNullOrEmpty(results[pc.Spec.Id].Coverage) ? note : $"{results[pc.Spec.Id].Coverage}; {note}";
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
            Execution = execution,
        };
    }

    /// <summary>The plan's estimate from the pass cost the sandbox measured (untrusted: only finite, non-negative numbers are used).</summary>
    private static PlanEstimate? EstimateFrom(SandboxOutcome outcome, CheckPlan plan, IReadOnlyList<PlannedCheck> checks)
    {
        PassCost? claimed;
        try { claimed = outcome.Details?[SandboxOutcomeDetails.PassCost]?.Deserialize<PassCost>(GateJson.Options); }
        catch (System.Text.Json.JsonException) { return null; }
        return CostEstimator.Accept(claimed) is { } cost ? CostEstimator.Estimate(plan, checks, cost) : null;
    }

    /// <summary>The sandbox job for <paramref name="checks"/> of <paramref name="plan"/>: what every backend and every shard executes.</summary>
    public static SandboxJob JobFor(CheckPlan plan, IReadOnlyList<PlannedCheck> checks, string modelPath, bool forceGpu)
    {
        var sandbox = plan.Policy.Spec.Sandbox;
        return new SandboxJob(Path.GetFullPath(modelPath), BoundPlan.Of(plan, checks), forceGpu || sandbox.Gpu != GpuMode.None,
            sandbox.Gpu == GpuMode.Required, sandbox.Limits, plan.InputsOf(checks).ModelExternalData);
    }

    /// <summary>
    /// The sandbox checks split into shards on <paramref name="executor"/>, merged here. A failed shard makes the
    /// checks it carried INCONCLUSIVE (<see cref="ShardMerge"/>); so does a shard whose sandbox fell below the policy's
    /// isolation floor (a node picks its own backend), and so does an executor that fails as a whole.
    /// </summary>
    private static async Task<(Runtime.RuntimeInfo?, SandboxInfo, ExecutionInfo?)> RunShardsAsync(IShardExecutor executor, SandboxJob job,
        ISandboxBackend? sandbox, List<PlannedCheck> sandboxChecks, CheckContext hostCtx, string evidenceDir, SandboxInfo info, IsolationLevel floor,
        Dictionary<string, CheckResult> results, IProgress<ProgressUpdate> progress, CancellationToken ct)
    {
        var work = Directory.CreateTempSubdirectory("gate-shards-").FullName;
        try
        {
            IReadOnlyList<ShardRun> runs;
            try { runs = await executor.RunAsync(job, sandbox, floor, work, progress, ct).ConfigureAwait(false); }
            catch (Exception e) when (!(e is OperationCanceledException && ct.IsCancellationRequested) && e is not GateInputException)
            {
                var why = $"the {executor.Name} executor failed: {e.Message}";
                foreach (var pc in sandboxChecks) results[pc.Spec.Id] = CheckResult.Inconclusive(pc.Spec, why);
                return (null, info with { Backend = executor.Name, Fault = why }, null);
            }
            // A shard below the floor counts as a failed shard: its results are not used.
            runs = runs.Select(r => r.Outcome.Completed && !r.Outcome.Isolation.Meets(floor)
                ? r with { Outcome = r.Outcome with { Completed = false, FaultReason = $"shard {r.Index} ran at isolation '{r.Outcome.Isolation.Name()}', below the policy's '{floor.Name()}'" } }
                : r).ToList();
            var (merged, execution) = ShardMerge.Merge(executor.Name, sandboxChecks, runs, hostCtx, evidenceDir);
            foreach (var (id, r) in merged) results[id] = r;
            var faults = runs.Where(r => !r.Outcome.Completed).Select(r => $"shard {r.Index}: {r.Outcome.FaultReason}").ToList();
            var first = runs.FirstOrDefault(r => r.Outcome.Completed)?.Outcome;
            var weakest = runs.Select(r => r.Outcome.Isolation).DefaultIfEmpty(IsolationLevel.None).Min();
            var backend = sandbox?.Name ?? first?.Details?["backend"]?.ToString() ?? "unknown";
            return (first?.Runtime, info with
            {
                Backend = executor.Name == "local" ? backend : $"{executor.Name}/{backend}", Isolation = weakest,
                Fault = faults.Count > 0 ? string.Join("; ", faults) : null,
                ImageId = first?.Details?["imageId"]?.ToString(), Image = first?.Details?["image"]?.ToString(),
                SelfTest = first?.Details?["selfTest"]?.AsObject()?.DeepClone().AsObject(),
            }, execution);
        }
        finally
        {
            try { Directory.Delete(work, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
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
