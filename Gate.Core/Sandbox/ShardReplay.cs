using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;

namespace Gate.Core.Sandbox;

/// <summary>What <c>gate shard replay</c> found: the recorded and the re-computed digest of one shard, and whether the recorded list of digests has the recorded Merkle root.</summary>
public sealed record ShardReplayReport(int Index, int Shards, string? Recorded, string? Replayed, string MerkleRoot, bool RootHolds, string? Fault)
{
    public bool Holds => RootHolds && Fault is null && Recorded is not null && Recorded == Replayed;
}

/// <summary>
/// Re-runs one shard of a recorded split decision on this machine and checks it against the record: the model and
/// policy must be the ones the decision names (by SHA-256), the record's shard digests must hash to its Merkle root
/// (signed with the decision when it comes from an attestation), and the replayed shard's results must have the
/// recorded digest. Deterministic units make this possible: a shard's results depend on the seed and its units only.
/// </summary>
public static class ShardReplay
{
    /// <param name="decision">The decision record (an attestation's predicate, or decision.json) as JSON.</param>
    public static async Task<ShardReplayReport> RunAsync(JsonObject decision, string modelPath, string policyPath, int index, ISandboxBackend sandbox,
        IReadOnlyDictionary<string, string>? data, IProgress<ProgressUpdate>? progress, CancellationToken ct)
    {
        var execution = decision["execution"] as JsonObject
            ?? throw new GateInputException("the decision has no 'execution' record: it was not split into shards, so there is no shard to replay");
        int shards = execution["shards"]?.GetValue<int>() ?? throw new GateInputException("the decision's execution record has no shard count");
        new ShardSelection(index, shards).Validate();
        var list = execution["shardList"] as JsonArray ?? throw new GateInputException("the decision's execution record lists no shards");
        if (list.Count != shards) throw new GateInputException($"the decision lists {list.Count} shards but says it ran {shards}");
        var digests = list.Select(s => s?["resultSha256"]?.GetValue<string>()).ToList();
        string root = execution["merkleRoot"]?.GetValue<string>() ?? throw new GateInputException("the decision's execution record has no Merkle root");
        bool rootHolds = ShardDigest.MerkleRoot(digests) == root;
        // Refused before anything runs: a record whose digests do not hash to its root was altered after the run, and
        // a shard that failed in the recorded run has no digest to check a replay against.
        if (!rootHolds)
            return new ShardReplayReport(index, shards, digests[index], null, root, false,
                "the recorded shard digests do not hash to the recorded Merkle root, so the execution record was altered after the run; nothing was replayed");
        if (digests[index] is null)
        {
            string fault = list[index]?["fault"]?.GetValue<string>() is { } f ? $" ({Report.SafeText.Line(f)})" : "";
            throw new GateInputException($"shard {index} failed in the recorded run{fault}: it returned no results, so there is no digest to check a replay against " +
                "(the checks it carried are INCONCLUSIVE in that decision); nothing was replayed");
        }

        var policy = PolicyLoader.Load(policyPath, data);
        var model = OnnxModelLoader.Load(modelPath);
        if (decision["policy"]?["sha256"]?.GetValue<string>() is { } ps && ps != policy.Sha256)
            throw new GateInputException($"{policyPath}: SHA-256 {policy.Sha256} is not the policy of this decision ({ps})");
        if (decision["model"]?["sha256"]?.GetValue<string>() is { } ms && ms != model.Sha256)
            throw new GateInputException($"{modelPath}: SHA-256 {model.Sha256} is not the model of this decision ({ms})");
        var plan = CheckPlan.Create(policy, model);
        var checks = plan.SandboxChecks.ToList();
        var job = ShardJobs.For(GateCheckPipeline.JobFor(plan, checks, modelPath, false), index, shards);
        var evidence = Directory.CreateTempSubdirectory("gate-replay-").FullName;
        try
        {
            var outcome = await sandbox.RunAsync(job, evidence, progress ?? new Progress<ProgressUpdate>(), ct).ConfigureAwait(false);
            return outcome.Completed
                ? new ShardReplayReport(index, shards, digests[index], ShardDigest.Of(outcome.Results), root, rootHolds, null)
                : new ShardReplayReport(index, shards, digests[index], null, root, rootHolds, outcome.FaultReason ?? "the shard did not complete");
        }
        finally
        {
            try { Directory.Delete(evidence, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
