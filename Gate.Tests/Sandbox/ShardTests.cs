using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Checks;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Process;
using Gate.Tests.Runtime;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

/// <summary>
/// Sharded runs: a check's units split over shards and merged give the same decision as one run; a shard that fails
/// or returns a forged part makes its checks INCONCLUSIVE, never a pass; the record lists each shard and its digest.
/// </summary>
public sealed class ShardTests
{
    /// <summary>Digits, one unsharded check (accuracy) and one sharded (adversarial with an ε sweep, two methods).</summary>
    internal static string Policy(int samples = 20)
    {
        var dir = TestPaths.TempDir("gate-shards");
        var path = Path.Combine(dir, "shards.yaml");
        File.WriteAllText(path, $"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: {"{"} name: digits-shards {"}"}
            spec:
              model:
                format: onnx
                inputs:
                  input: {"{"} shape: [-1, 1, 8, 8], range: [0.0, 1.0] {"}"}
              runtime: onnxruntime
              sandbox:
                isolation: process
                limits: {"{"} memory: 2Gi, cpus: 1, timeout: 5m {"}"}
              seed: 1234
              datasets:
                test: {"{"} inputs: {TestPaths.FixtureData("digits_test_x.npy")}, labels: {TestPaths.FixtureData("digits_test_y.npy")} {"}"}
              checks:
                - id: accuracy
                  type: accuracy
                  dataset: test
                  require: {"{"} min: 0.5 {"}"}
                - id: robustness
                  type: adversarial
                  dataset: test
                  samples: {samples}
                  threat: {"{"} norm: linf, epsilon: 0.1 {"}"}
                  sweep: [0.03]
                  search:
                    - {"{"} method: pgd, steps: 8, restarts: 2 {"}"}
                    - {"{"} method: square, queries: 60 {"}"}
                  require: {"{"} robustAccuracy: {"{"} min: 0.1 {"}"} {"}"}
            """);
        return path;
    }

    internal static string Model => TestPaths.FixtureModel("digits-cnn.onnx");

    internal static async Task<DecisionRecord> RunAsync(string policy, IShardExecutor? executor, CancellationToken ct = default) =>
        await new GateCheckPipeline(new ProcessBackend()).RunAsync(new GateCheckRequest(Model, policy, TestPaths.TempDir("gate-shards-out"), Executor: executor), ct: ct);

    /// <summary>
    /// The decision's content without what may differ between runs of the same job: timings, when it ran, the
    /// sandbox's own facts (backend name, self-test timestamp) and the execution record (which lists the shards).
    /// </summary>
    internal static string Content(DecisionRecord record)
    {
        var node = JsonNode.Parse(record.ToJson())!.AsObject();
        foreach (var key in new[] { "startedAt", "endedAt", "sandbox", "execution" }) node.Remove(key);
        void Strip(JsonNode? n)
        {
            if (n is JsonObject o)
            {
                foreach (var k in o.Select(kv => kv.Key).Where(ShardDigest.IsTiming).ToList()) o.Remove(k);
                foreach (var kv in o) Strip(kv.Value);
            }
            else if (n is JsonArray a) foreach (var x in a) Strip(x);
        }
        Strip(node);
        return node.ToJsonString();
    }

    [Fact]
    public void Shard_ranges_cover_every_unit_once_and_split_the_budget_without_exceeding_it()
    {
        foreach (var total in new long[] { 0, 1, 5, 40, 1001 })
            foreach (var n in new[] { 1, 2, 3, 7, 64 })
            {
                long next = 0, budget = 0;
                for (int i = 0; i < n; i++)
                {
                    var s = new ShardSelection(i, n);
                    var (a, b) = s.Range(total);
                    Assert.Equal(next, a);
                    Assert.True(b >= a);
                    next = b;
                    budget += s.Share(1000, total);
                }
                Assert.Equal(total, next);
                Assert.True(budget <= 1000);
            }
        Assert.Throws<GateInputException>(() => new ShardSelection(3, 3).Validate());
    }

    [Fact]
    public async Task One_three_and_seven_local_shards_give_the_same_decision()
    {
        OrtTestSupport.RequireOrt();
        var policy = Policy();
        var one = await RunAsync(policy, null, TestContext.Current.CancellationToken);
        Assert.Null(one.Execution);
        Assert.Equal(Verdict.Pass, one.Checks.Single(c => c.Id == "accuracy").Verdict);
        Assert.True(one.Checks.Single(c => c.Id == "robustness").Metrics["counterexamples"] > 0, "the fixture should yield counterexamples, so their evidence is compared too");
        foreach (var n in new[] { 3, 7 })
        {
            var split = await RunAsync(policy, new LocalShardExecutor(n), TestContext.Current.CancellationToken);
            Assert.Equal(Content(one), Content(split));
            var ex = split.Execution!;
            Assert.Equal(n, ex.ShardList.Count);
            Assert.Equal(["accuracy"], ex.Unsharded);
            Assert.All(ex.ShardList, s => Assert.NotNull(s.ResultSha256));
            Assert.Equal(ShardDigest.MerkleRoot(ex.ShardList.Select(s => s.ResultSha256).ToList()), ex.MerkleRoot);
            Assert.Equal($"0..{20 / n} of 20", ex.ShardList[0].Units["robustness"]);
        }
    }

    /// <summary>Wraps the local executor and spoils one shard's outcome afterwards.</summary>
    private sealed class SpoilingExecutor(int shards, Func<ShardRun, ShardRun> spoil) : IShardExecutor
    {
        private readonly LocalShardExecutor _inner = new(shards);
        public string Name => "local";
        public int Shards => shards;
        public bool UsesHostSandbox => true;
        public async Task<IReadOnlyList<ShardRun>> RunAsync(SandboxJob job, ISandboxBackend? sandbox, IsolationLevel floor, string workDir,
            IProgress<ProgressUpdate> progress, CancellationToken ct) =>
            (await _inner.RunAsync(job, sandbox, floor, workDir, progress, ct)).Select(spoil).ToList();
    }

    /// <summary>An executor that runs every shard in this host's process backend but, like Slurm, is not the host's sandbox path.</summary>
    private sealed class RemoteLikeExecutor(int shards) : IShardExecutor
    {
        public string Name => "remote-like";
        public int Shards => shards;
        public bool UsesHostSandbox => false;
        public Task<IReadOnlyList<ShardRun>> RunAsync(SandboxJob job, ISandboxBackend? sandbox, IsolationLevel floor, string workDir,
            IProgress<ProgressUpdate> progress, CancellationToken ct) =>
            new LocalShardExecutor(shards).RunAsync(job, new ProcessBackend(), floor, workDir, progress, ct);
    }

    [Fact]
    public async Task One_shard_through_an_executor_is_the_whole_run()
    {
        OrtTestSupport.RequireOrt();
        var policy = Policy(samples: 9);
        var one = await RunAsync(policy, null, TestContext.Current.CancellationToken);
        var viaExecutor = await RunAsync(policy, new RemoteLikeExecutor(1), TestContext.Current.CancellationToken);
        Assert.Equal(Content(one), Content(viaExecutor));
        Assert.Single(viaExecutor.Execution!.ShardList);
    }

    [Fact]
    public async Task A_failed_shard_makes_the_checks_it_carried_inconclusive_and_the_decision_not_approve()
    {
        OrtTestSupport.RequireOrt();
        var record = await RunAsync(Policy(samples: 9), new SpoilingExecutor(3, r => r.Index == 1
            ? r with { Outcome = r.Outcome with { Completed = false, FaultReason = "node lost" }, ExitStatus = null } : r), TestContext.Current.CancellationToken);
        var robustness = record.Checks.Single(c => c.Id == "robustness");
        Assert.Equal(Verdict.Inconclusive, robustness.Verdict);
        Assert.Contains("shard 1: node lost", robustness.Summary);
        // The unsharded check ran whole in shard 0, which completed.
        Assert.Equal(Verdict.Pass, record.Checks.Single(c => c.Id == "accuracy").Verdict);
        Assert.NotEqual(GateDecision.Approve, record.Decision);
        Assert.Null(record.Execution!.ShardList[1].ResultSha256);
        Assert.Equal("node lost", record.Execution.ShardList[1].Fault);
    }

    [Fact]
    public async Task A_shard_whose_sandbox_is_below_the_isolation_floor_is_inconclusive_never_a_pass()
    {
        OrtTestSupport.RequireOrt();
        // Shard 1's node ran it (and returned a complete, plausible part) without isolation, under a policy that asks for 'process'.
        var record = await RunAsync(Policy(samples: 9), new SpoilingExecutor(3, r => r.Index == 1
            ? r with { Outcome = r.Outcome with { Isolation = IsolationLevel.None } } : r), TestContext.Current.CancellationToken);
        var robustness = record.Checks.Single(c => c.Id == "robustness");
        Assert.Equal(Verdict.Inconclusive, robustness.Verdict);
        Assert.Contains("shard 1 ran at isolation 'none', below the policy's 'process'", robustness.Summary);
        Assert.NotEqual(GateDecision.Approve, record.Decision);
        Assert.Null(record.Execution!.ShardList[1].ResultSha256);
        Assert.Contains("below the policy's", record.Execution.ShardList[1].Fault);
        // The decision reports the weakest isolation any shard ran at.
        Assert.Equal(IsolationLevel.None, record.Sandbox.Isolation);
    }

    /// <summary>A decision's execution record: shard 1 failed (no digest), the root over the list as recorded.</summary>
    private static System.Text.Json.Nodes.JsonObject DecisionWithFailedShard(bool forgeRoot)
    {
        string?[] digests = [new string('a', 64), null, new string('b', 64)];
        return new System.Text.Json.Nodes.JsonObject
        {
            ["execution"] = new System.Text.Json.Nodes.JsonObject
            {
                ["executor"] = "slurm", ["shards"] = 3,
                ["merkleRoot"] = forgeRoot ? new string('0', 64) : ShardDigest.MerkleRoot(digests),
                ["shardList"] = new System.Text.Json.Nodes.JsonArray(digests.Select((d, i) => (System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonObject
                {
                    ["index"] = i, ["resultSha256"] = d, ["fault"] = d is null ? "task 1 (attempt 3 on vm) ended without an exit status: killed, cancelled or its node failed" : null,
                }).ToArray()),
            },
        };
    }

    [Fact]
    public async Task Replaying_a_shard_that_failed_in_the_recorded_run_is_refused_before_anything_runs()
    {
        // No model, policy or sandbox is touched: the refusal comes from the record alone (a null sandbox would throw if used).
        var e = await Assert.ThrowsAsync<GateInputException>(() => ShardReplay.RunAsync(DecisionWithFailedShard(forgeRoot: false), "/nonexistent/model.onnx",
            "/nonexistent/policy.yaml", 1, null!, null, null, TestContext.Current.CancellationToken));
        Assert.Contains("shard 1 failed in the recorded run (task 1 (attempt 3 on vm) ended without an exit status", e.Message);
        Assert.Contains("nothing was replayed", e.Message);
    }

    [Fact]
    public async Task Replaying_from_a_record_whose_digests_do_not_hash_to_its_root_is_refused_before_anything_runs()
    {
        var report = await ShardReplay.RunAsync(DecisionWithFailedShard(forgeRoot: true), "/nonexistent/model.onnx", "/nonexistent/policy.yaml", 2, null!, null, null,
            TestContext.Current.CancellationToken);
        Assert.False(report.RootHolds);
        Assert.False(report.Holds);
        Assert.Null(report.Replayed);
        Assert.Contains("execution record was altered", report.Fault);
    }

    [Fact]
    public async Task A_shard_part_that_claims_other_units_is_refused()
    {
        OrtTestSupport.RequireOrt();
        // Shard 2 claims shard 1's units: the parts no longer cover the units exactly once.
        var record = await RunAsync(Policy(samples: 9), new SpoilingExecutor(3, r =>
        {
            if (r.Index != 2) return r;
            var part = r.Outcome.Results.Single(x => x.Id == "robustness").Details[ShardPart.Key]!.AsObject();
            part["start"] = 3; part["end"] = 6;
            return r;
        }), TestContext.Current.CancellationToken);
        var robustness = record.Checks.Single(c => c.Id == "robustness");
        Assert.Equal(Verdict.Inconclusive, robustness.Verdict);
        Assert.Contains("cannot be merged", robustness.Summary);
        Assert.NotEqual(GateDecision.Approve, record.Decision);
    }

    [Fact]
    public async Task A_replayed_shard_matches_its_recorded_digest_and_a_forged_digest_does_not()
    {
        OrtTestSupport.RequireOrt();
        var policy = Policy(samples: 9);
        var dir = TestPaths.TempDir("gate-replay");
        var r = GateCli.Run("check", "--model", Model, "--policy", policy, "--out", dir, "--sandbox", "process", "--shards", "3");
        Assert.True(r.ExitCode is 0 or 1 or 2, r.Stderr);
        var decision = Path.Combine(dir, "decision.json");
        var ok = GateCli.Run("shard", "replay", "--decision", decision, "--model", Model, "--policy", policy, "--shard", "2", "--sandbox", "process");
        Assert.True(ok.ExitCode == 0, ok.Stdout + ok.Stderr);
        Assert.Contains("REPLAYED", ok.Stdout);

        // A record whose digest for shard 2 was changed: the root no longer matches the list, and the replay differs.
        var doc = JsonNode.Parse(File.ReadAllText(decision))!;
        doc["execution"]!["shardList"]![2]!["resultSha256"] = new string('0', 64);
        var forged = Path.Combine(dir, "forged.json");
        File.WriteAllText(forged, doc.ToJsonString());
        var bad = GateCli.Run("shard", "replay", "--decision", forged, "--model", Model, "--policy", policy, "--shard", "2", "--sandbox", "process");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("does NOT match", bad.Stdout);
        Assert.Contains("nothing was replayed", bad.Stdout);
        Assert.Contains("NOT REPLAYED", bad.Stdout);
    }
}

/// <summary>One concept, one place: a check type declares work units exactly when it can run a range of them.</summary>
public sealed class WorkUnitDeclarationTests
{
    [Fact]
    public void Check_types_with_declared_units_are_exactly_the_sharded_ones()
    {
        foreach (var check in Gate.Core.Policy.CheckTypes.BuiltIn.Select(d => Gate.Core.Checks.CheckRegistry.Find(d.Type)).OfType<Gate.Core.Checks.ICheck>())
            Assert.True((check.Declaration.Units is not null) == check is Gate.Core.Checks.IShardedCheck,
                $"check type '{check.Type}': declares units {check.Declaration.Units is not null}, implements IShardedCheck {check is Gate.Core.Checks.IShardedCheck}");
        Assert.Equal("samples", new Gate.Core.Checks.Adversarial.AdversarialCheck().Declaration.Units!.Noun);
    }
}
