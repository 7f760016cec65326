using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.IO;
using Gate.Core.Plan;
using Gate.Core.Policy;

namespace Gate.Core.Sandbox;

/// <summary>
/// One shard as an executor got it back: the sandbox outcome (its results already validated as untrusted input by
/// whoever collected them), where its evidence files now are, and where and how it ran.
/// </summary>
/// <param name="EvidenceDir">The host folder holding this shard's collected evidence (paths as the results list them).</param>
/// <param name="Node">The machine that ran it (Slurm node), or null for this host.</param>
/// <param name="ExitStatus">The exit status of its last attempt, when known.</param>
/// <param name="Attempts">How many times it was started (retries included).</param>
public sealed record ShardRun(int Index, SandboxOutcome Outcome, string EvidenceDir, string? Node = null, int? ExitStatus = null, int Attempts = 1);

/// <summary>
/// Where the shards of a job run. <c>local</c> runs them as sandbox jobs on this host; <c>slurm</c> as one job array
/// on a cluster. An executor returns one <see cref="ShardRun"/> per shard, a failed one included (never fewer):
/// the merge turns a failed shard into INCONCLUSIVE for the checks it carried. Keys never pass through an executor:
/// signing happens on the submitting host after the merge.
/// </summary>
public interface IShardExecutor
{
    /// <summary>"local" or "slurm" (recorded in the decision).</summary>
    string Name { get; }
    int Shards { get; }
    /// <summary>The host's sandbox runs the shards (local); false when each node picks its own (slurm).</summary>
    bool UsesHostSandbox { get; }

    /// <param name="sandbox">The host's backend when <see cref="UsesHostSandbox"/>; else null.</param>
    /// <param name="floor">The policy's isolation floor, which every shard's sandbox must meet.</param>
    /// <param name="workDir">A private host folder for this run's shard evidence (removed by the caller).</param>
    Task<IReadOnlyList<ShardRun>> RunAsync(SandboxJob job, ISandboxBackend? sandbox, IsolationLevel floor, string workDir, IProgress<ProgressUpdate> progress, CancellationToken ct);
}

/// <summary>The shards as SandboxJobs: shard i is the same bound plan with <see cref="BoundPlan.Shard"/> = (i, N).</summary>
public static class ShardJobs
{
    public static SandboxJob For(SandboxJob job, int index, int count) => job with { Plan = job.Plan with { Shard = new ShardSelection(index, count) } };

    /// <summary>
    /// A shard's progress as the user sees it: named by shard, and without the verdict a shard part carries (a part
    /// is not a result: its check's verdict exists only after the merge).
    /// </summary>
    public static IProgress<ProgressUpdate> Progress(IProgress<ProgressUpdate> inner, int index, int count) =>
        new Relabelled(inner, $" [shard {index + 1}/{count}]");

    private sealed class Relabelled(IProgress<ProgressUpdate> inner, string suffix) : IProgress<ProgressUpdate>
    {
        public void Report(ProgressUpdate u) => inner.Report(u with { CheckId = u.CheckId + suffix, Verdict = null });
    }
}

/// <summary>
/// <c>--executor local --shards N</c>: N sandbox jobs on this host, as many at once as it has cores for (each job
/// keeps the policy's own limits), each with its own evidence folder.
/// </summary>
public sealed class LocalShardExecutor(int shards, int? parallel = null) : IShardExecutor
{
    public string Name => "local";
    public int Shards { get; } = shards >= 1 ? shards : throw new GateInputException($"the shard count must be at least 1 (got {shards})") { Input = UserInput.ShardCount };
    public bool UsesHostSandbox => true;

    public async Task<IReadOnlyList<ShardRun>> RunAsync(SandboxJob job, ISandboxBackend? sandbox, IsolationLevel floor, string workDir, IProgress<ProgressUpdate> progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(sandbox);
        int cpus = Math.Max(1, (int)Math.Ceiling(job.Limits.Cpus));
        using var slots = new SemaphoreSlim(parallel ?? Math.Max(1, Environment.ProcessorCount / cpus));
        var runs = Enumerable.Range(0, Shards).Select(async i =>
        {
            var dir = Path.Combine(workDir, $"shard-{i}");
            Directory.CreateDirectory(dir);
            await slots.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                SandboxOutcome outcome;
                try { outcome = await sandbox.RunAsync(ShardJobs.For(job, i, Shards), dir, ShardJobs.Progress(progress, i, Shards), ct).ConfigureAwait(false); }
                catch (Exception e) when (!(e is OperationCanceledException && ct.IsCancellationRequested))
                { outcome = new SandboxOutcome(false, $"sandbox failed: {e.Message}", [], sandbox.AchievedIsolation, null); }
                return new ShardRun(i, outcome, dir, ExitStatus: outcome.Completed ? 0 : null);
            }
            finally { slots.Release(); }
        }).ToList();
        return await Task.WhenAll(runs).ConfigureAwait(false);
    }
}

/// <summary>
/// The digest of what a shard returned, over what is deterministic: its results with timings removed. A replay of
/// the shard on any machine reproduces it, so an auditor can check one shard against the signed root.
/// </summary>
public static class ShardDigest
{
    private static readonly HashSet<string> Timing = new(StringComparer.Ordinal) { "durationSeconds", "wallTimeMs", "gradientPasses" };

    /// <summary>Whether a result key holds a timing, which differs between runs of the same job and is left out of digests.</summary>
    public static bool IsTiming(string key) => Timing.Contains(key);

    public static string Of(IEnumerable<CheckResult> results)
    {
        var node = JsonSerializer.SerializeToNode(results.OrderBy(r => r.Id, StringComparer.Ordinal).ToList(), GateJson.Compact)!;
        Strip(node);
        return Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(node.ToJsonString(GateJson.Compact))));
    }

    private static void Strip(JsonNode? n)
    {
        switch (n)
        {
            case JsonObject o:
                foreach (var k in o.Select(kv => kv.Key).Where(Timing.Contains).ToList()) o.Remove(k);
                foreach (var kv in o) Strip(kv.Value);
                break;
            case JsonArray a:
                foreach (var x in a) Strip(x);
                break;
        }
    }

    /// <summary>
    /// The Merkle root (RFC 6962 shape: leaf = H(0x00 ‖ digest), node = H(0x01 ‖ left ‖ right), an odd last node is
    /// carried up) of the shards' result digests in shard order; a shard with no result has the empty digest.
    /// </summary>
    public static string MerkleRoot(IReadOnlyList<string?> leaves)
    {
        var level = leaves.Select(l => SHA256.HashData([0x00, .. (l is null ? [] : Convert.FromHexString(l))])).ToList();
        if (level.Count == 0) return Convert.ToHexStringLower(SHA256.HashData([]));
        while (level.Count > 1)
        {
            var next = new List<byte[]>();
            for (int i = 0; i < level.Count; i += 2)
                next.Add(i + 1 < level.Count ? SHA256.HashData([0x01, .. level[i], .. level[i + 1]]) : level[i]);
            level = next;
        }
        return Convert.ToHexStringLower(level[0]);
    }
}

/// <summary>
/// Turns the shards of a split job into one result per check. A sharded check's parts are merged by the check
/// itself (<see cref="IShardedCheck.Merge"/>); any other check comes from shard 0. A shard that did not complete
/// makes every check it carried INCONCLUSIVE with the reason — a missing part is never merged around.
/// </summary>
public static class ShardMerge
{
    public static (Dictionary<string, CheckResult> Results, ExecutionInfo Execution) Merge(string executor, IReadOnlyList<PlannedCheck> checks,
        IReadOnlyList<ShardRun> runs, CheckContext hostCtx, string evidenceDir)
    {
        int n = runs.Count;
        var byShard = runs.OrderBy(r => r.Index).ToList();
        for (int i = 0; i < n; i++)
            if (byShard[i].Index != i) throw new InvalidOperationException($"the executor returned shards {string.Join(",", runs.Select(r => r.Index))} for {n} shards");
        string? Fault(ShardRun r) => r.Outcome.Completed ? null : r.Outcome.FaultReason ?? "the shard did not complete";
        Dictionary<string, CheckResult>? ResultsOf(ShardRun r)
        {
            if (!r.Outcome.Completed) return null;
            var d = new Dictionary<string, CheckResult>(StringComparer.Ordinal);
            foreach (var x in r.Outcome.Results) if (!d.TryAdd(x.Id, x)) return null;
            return d;
        }
        var shardResults = byShard.Select(ResultsOf).ToList();

        var results = new Dictionary<string, CheckResult>(StringComparer.Ordinal);
        var unitRanges = byShard.Select(_ => new SortedDictionary<string, string>(StringComparer.Ordinal)).ToList();
        var budgets = byShard.Select(_ => new SortedDictionary<string, JsonObject>(StringComparer.Ordinal)).ToList();
        foreach (var pc in checks)
        {
            string id = pc.Spec.Id;
            // One shard is the whole job: its checks ran whole (and merged where they ran), like any unsplit run.
            if (!CheckExecutor.IsSharded(pc) || n == 1)
            {
                var r0 = shardResults[0]?.GetValueOrDefault(id);
                results[id] = r0 is null
                    ? CheckResult.Inconclusive(pc.Spec, $"shard 0, which runs this check whole (it declares no work units), returned no result: {Fault(byShard[0]) ?? "missing from its results"}")
                    : Adopt(r0, byShard[0], evidenceDir);
                continue;
            }
            var missing = Enumerable.Range(0, n).Where(i => shardResults[i]?.ContainsKey(id) != true).ToList();
            if (missing.Count > 0)
            {
                results[id] = CheckResult.Inconclusive(pc.Spec, $"{missing.Count} of {n} shards returned no part of this check, so it was not merged: " +
                    string.Join("; ", missing.Select(i => $"shard {i}: {Fault(byShard[i]) ?? "missing from its results"}")));
                continue;
            }
            var partials = new List<CheckResult>();
            string? copyFault = null;
            for (int i = 0; i < n; i++)
            {
                var p = shardResults[i]![id];
                try { partials.Add(Adopt(p, byShard[i], evidenceDir)); }
                catch (InvalidDataException e) { copyFault = $"shard {i}: {e.Message}"; break; }
                if (p.Details[ShardPart.Key] is not JsonObject part) continue;
                unitRanges[i][id] = $"{part["start"]}..{part["end"]} of {part["total"]}";
                // A shard's budget is its own (split in proportion to its units): report it, and its exhaustion, per shard.
                if (part["state"] is JsonObject st && (st.ContainsKey("queryLimit") || st.ContainsKey("exhausted")))
                    budgets[i][id] = new JsonObject
                    {
                        // Queries where the check counts them, else its search steps (trojan scan).
                        ["used"] = (st["queries"] ?? st["steps"])?.DeepClone(), ["unit"] = st["queries"] is not null ? "queries" : st["steps"] is not null ? "steps" : null,
                        ["limit"] = st["queryLimit"]?.DeepClone(), ["wallTimeMs"] = st["wallTimeMs"]?.DeepClone(), ["exhausted"] = st["exhausted"]?.DeepClone(),
                    };
            }
            if (copyFault is not null) { results[id] = CheckResult.Inconclusive(pc.Spec, $"shard evidence refused: {copyFault}"); continue; }
            var writer = hostCtx.Evidence.ForCheck(id);
            var merged = ((IShardedCheck)pc.Implementation!).Merge(hostCtx.WithEvidence(writer), pc.Spec, pc.Options!, partials);
            foreach (var f in writer.Files) if (!merged.Evidence.Contains(f)) merged.Evidence.Add(f);
            merged.Enforcement = pc.Spec.Enforcement;
            merged.DurationSeconds = partials.Max(p => p.DurationSeconds);
            results[id] = merged;
        }

        var records = byShard.Select((r, i) => new ShardRecord(i, unitRanges[i], r.Node, r.ExitStatus, r.Attempts,
            shardResults[i] is null ? null : ShardDigest.Of(r.Outcome.Results), Fault(r)) { Budgets = budgets[i] }).ToList();
        var unsharded = checks.Where(c => !CheckExecutor.IsSharded(c)).Select(c => c.Spec.Id).ToList();
        return (results, new ExecutionInfo(executor, n, records, ShardDigest.MerkleRoot(records.Select(x => x.ResultSha256).ToList())) { Unsharded = unsharded });
    }

    /// <summary>
    /// Moves a shard result's evidence files from the shard's folder into the run's, re-checking each one's size and
    /// SHA-256; a file another shard already placed is refused (two shards never write the same evidence).
    /// </summary>
    private static CheckResult Adopt(CheckResult r, ShardRun run, string evidenceDir)
    {
        foreach (var ev in r.Evidence)
        {
            var rel = ev.Path.Replace('\\', '/');
            byte[] bytes;
            try { bytes = UntrustedFiles.ReadAll(run.EvidenceDir, rel, Math.Max(0, ev.Bytes)); }
            catch (UnsafeFileException e) { throw new InvalidDataException($"evidence file '{ev.Path}' refused: {e.Reason}"); }
            if (bytes.LongLength != ev.Bytes || !string.Equals(Convert.ToHexStringLower(SHA256.HashData(bytes)), ev.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"evidence file '{ev.Path}' does not match its recorded size and SHA-256");
            var target = Path.Combine(evidenceDir, rel);
            if (File.Exists(target)) throw new InvalidDataException($"evidence file '{ev.Path}' was already written by another shard");
            AtomicFile.Write(target, bytes);
        }
        return r;
    }
}
