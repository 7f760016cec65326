using System.CommandLine;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.Report;
using Gate.Core.Sandbox;
using Gate.Sandbox.Slurm;

namespace Gate.Cli.Commands;

/// <summary><c>gate shard run</c> (what a Slurm array task executes) and <c>gate shard replay</c> (an auditor re-runs one shard).</summary>
public static class ShardCommand
{
    public static Command Create()
    {
        var cmd = new Command("shard", "Shards of a split gate check: run one on a cluster node, or replay one to audit a signed decision.");
        cmd.Subcommands.Add(Run());
        cmd.Subcommands.Add(Replay());
        return cmd;
    }

    private static Command Run()
    {
        var job = new Option<DirectoryInfo>("--job") { Description = "The staged job folder (on the shared folder).", Required = true };
        var shard = new Option<int>("--shard") { Description = "The shard to run (0 to N-1; $SLURM_ARRAY_TASK_ID).", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "Where results/ is written for the submitting host.", Required = true };
        var sandbox = new Option<string>("--sandbox") { Description = "Sandbox backend on this node (default: auto, at least the policy's isolation)." };
        var cmd = new Command("run", """
            Run one shard of a staged job in this node's sandbox (written into array tasks by gate check --executor slurm;
            not usually typed by hand). Exit 0: the shard completed; 1: it did not (the submitting host may retry it).
            """) { job, shard, output, sandbox };
        cmd.SetAction((pr, ct) => Cli.Guard(() => ShardTask.RunAsync(pr.GetValue(job)!.FullName, pr.GetValue(shard), pr.GetValue(output)!.FullName,
            pr.GetValue(sandbox), new Progress<Gate.Core.Evidence.ProgressUpdate>(), ct)));
        return cmd;
    }

    private static Command Replay()
    {
        var artifact = new Option<FileInfo>("--artifact", "-a") { Description = "The signed decision (OUT/attestation.dsse.json); needs --key." };
        var key = new Option<FileInfo>("--key", "-k") { Description = "The signer's public key (PEM) for --artifact." };
        var decisionFile = new Option<FileInfo>("--decision") { Description = "An unsigned decision.json instead of --artifact (its Merkle root then proves nothing about who made it)." };
        var model = new Option<FileInfo>("--model", "-m") { Description = "The model the decision was made about.", Required = true };
        var policy = new Option<FileInfo>("--policy", "-p") { Description = "The policy the decision was made under.", Required = true };
        var shard = new Option<int>("--shard") { Description = "The shard to re-run (0 to N-1).", Required = true };
        var data = new Option<string[]>("--data") { Description = "As for gate check: NAME=x.npy or NAME.labels=y.npy, when the decision was made with --data." };
        var sandbox = new Option<string>("--sandbox") { Description = "Sandbox backend for the replay (default: auto)." };
        var cmd = new Command("replay", """
            Re-run one shard of a split decision here and check it against the record: the shard digests listed in the
            decision must hash to its Merkle root (signed with the decision), and the replayed shard's results must have
            the digest listed for it. Exit 0 when both hold, 1 when they do not, 3 for unusable input.
            Example: gate shard replay --artifact out/attestation.dsse.json --key gate.pub --model m.onnx --policy p.yaml --shard 2
            """) { artifact, key, decisionFile, model, policy, shard, data, sandbox };
        cmd.SetAction((pr, ct) => Cli.Guard(async () =>
        {
            var decision = LoadDecision(pr.GetValue(artifact), pr.GetValue(key), pr.GetValue(decisionFile));
            var p = pr.GetValue(policy)!.FullName;
            var backend = Sandboxes.Select(pr.GetValue(sandbox), Gate.Core.Policy.PolicyLoader.Load(p, Cli.ParsePairs(pr.GetValue(data), "--data")).Spec.Sandbox.Isolation);
            var report = await ShardReplay.RunAsync(decision, pr.GetValue(model)!.FullName, p, pr.GetValue(shard), backend,
                Cli.ParsePairs(pr.GetValue(data), "--data"), null, ct);
            Console.Out.WriteLine($"{(report.RootHolds ? "OK  " : "FAIL")} merkle root {report.MerkleRoot} {(report.RootHolds ? "matches" : "does NOT match")} the {report.Shards} recorded shard digests");
            if (report.Fault is not null) Console.Out.WriteLine($"FAIL shard {report.Index}: {SafeText.Line(report.Fault)}");
            else Console.Out.WriteLine($"{(report.Recorded == report.Replayed ? "OK  " : "FAIL")} shard {report.Index}: replayed {report.Replayed}, recorded {report.Recorded ?? "(none: the shard failed in the recorded run)"}");
            Console.Out.WriteLine(report.Holds ? "REPLAYED" : "NOT REPLAYED");
            return report.Holds ? 0 : 1;
        }));
        return cmd;
    }

    private static JsonObject LoadDecision(FileInfo? artifact, FileInfo? key, FileInfo? decision)
    {
        if ((artifact is null) == (decision is null)) throw new GateInputException("give either --artifact (with --key) or --decision");
        if (decision is not null)
        {
            if (!decision.Exists) throw new GateInputException($"{decision.FullName}: not found");
            return JsonNode.Parse(File.ReadAllText(decision.FullName)) as JsonObject ?? throw new GateInputException($"{decision.FullName}: not a JSON object");
        }
        if (key is null) throw new GateInputException("--artifact needs --key (the signer's public key)");
        var envelope = DsseEnvelope.LoadEnvelopeOrBundle(artifact!.FullName, out _);
        if (!envelope.IsSignedBy(VerificationKey.Load(key.FullName)))
            throw new GateInputException($"{artifact.FullName}: no signature verifies under {key.FullName}; nothing in it is used");
        var statement = JsonNode.Parse(envelope.Payload) as JsonObject;
        return statement?["predicate"] as JsonObject ?? throw new GateInputException($"{artifact.FullName}: the statement has no predicate");
    }
}
