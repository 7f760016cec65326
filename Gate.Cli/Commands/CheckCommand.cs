using System.CommandLine;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Trust;
using Gate.Core.Policy;
using Gate.Sandbox;
using Gate.Sandbox.Slurm;
using Spectre.Console;

namespace Gate.Cli.Commands;

public static class CheckCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The ONNX model to judge.", Required = true };
        var policy = new Option<FileInfo>("--policy", "-p") { Description = "The deployment policy (YAML, apiVersion gate/v1).", Required = true };
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Output folder (default: ./gate-out). Gate owns decision.json, attestation.dsse.json, report.html, summary.md, junit.xml and evidence/ in it and replaces them as one set when a run completes; other files are left alone. A run that fails leaves none of them; two runs into one folder are refused (exit 3)." };
        var data = new Option<string[]>("--data") { Description = "Data override: judge this run on other files than the policy names for dataset NAME. NAME=x.npy replaces its inputs, NAME.labels=y.npy its labels, NAME=DIR (or a manifest) an image dataset's images and labels; paths are relative to the current folder. Repeatable. Refused (exit 3) for a dataset the policy pins by sha256 unless it sets allowOverride: true; every override is recorded in decision.json (the signed record) and flagged in report.html, summary.md and the console.", AllowMultipleArgumentsPerToken = false };
        var sandbox = new Option<string>("--sandbox") { Description = $"Sandbox backend: {string.Join(", ", SandboxSelector.Names)} (default: auto, the strongest available)." };
        var gpu = new Option<bool>("--gpu") { Description = "Ask for the CUDA execution provider even if the policy does not." };
        var json = new Option<bool>("--json") { Description = "Print decision.json to stdout instead of the summary table." };
        var key = new Option<FileInfo>("--key") { Description = "Sign the decision with this ECDSA P-256 private key (PKCS#8 PEM, see 'gate keygen'): writes attestation.dsse.json. Without it the decision is unsigned." };
        var trust = new Option<FileInfo>("--trust") { Description = "Refuse to run (exit 3) unless the policy carries enough valid approvals from the governance keys in this trust file (YAML: keys, required)." };
        var approvals = new Option<DirectoryInfo>("--approvals") { Description = "Folder of policy approvals for --trust (default: POLICY.approvals/ beside the policy)." };
        var executor = new Option<string>("--executor") { Description = "Where the sandbox checks run: local (this host; default) or slurm (one job array on a Slurm cluster, submitted with sbatch from here). The decision is the same either way." };
        var shards = new Option<int>("--shards") { Description = "Split the sandbox checks into N shards (default 1). Checks with work units (adversarial: samples) split their units; the others run whole in shard 0. local: N sandbox jobs over this host's cores; slurm: one array of N tasks.", DefaultValueFactory = _ => 1 };
        var partition = new Option<string>("--partition") { Description = "slurm: the partition to submit to (sbatch --partition)." };
        var gres = new Option<string>("--gres") { Description = "slurm: generic resources per task, e.g. gpu:1 (sbatch --gres)." };
        var sharedDir = new Option<DirectoryInfo>("--shared-dir") { Description = "slurm: a folder every node sees at the same path; the job is staged there and removed after (default: ./.gate-slurm)." };
        var retries = new Option<int>("--retries") { Description = "slurm: resubmit a failed task up to N times before its shard counts as failed (default 2). A shard that never completes makes its checks INCONCLUSIVE.", DefaultValueFactory = _ => 2 };
        var cmd = new Command("check", $"""
            Judge a model against a policy and write a decision.
            {ExitCodes.CheckHelp}
            Progress goes to stderr: bars on a terminal, else timestamped lines per check start and finish and a
            heartbeat every 10 s (GATE_PROGRESS_INTERVAL=seconds).
            Example: gate check --model examples/digits/digits-cnn.onnx --policy policies/digits-release.yaml --out out/
            On a cluster: gate check ... --executor slurm --shards 8 --partition gpu --gres gpu:1 --shared-dir /shared/gate
            (docs/scale-out.md); the decision then lists every shard and carries the Merkle root of their results.
            """) { model, policy, outDir, data, sandbox, gpu, json, key, trust, approvals, executor, shards, partition, gres, sharedDir, retries };
        cmd.SetAction((pr, ct) => Cli.Guard(async () =>
        {
            var req = new GateCheckRequest(pr.GetValue(model)!.FullName, pr.GetValue(policy)!.FullName,
                pr.GetValue(outDir)?.FullName ?? Path.GetFullPath("gate-out"), Cli.ParsePairs(pr.GetValue(data), "--data"), pr.GetValue(gpu),
                ApprovalsFolder: pr.GetValue(approvals)?.FullName, TrustPath: pr.GetValue(trust)?.FullName, SigningKeyPath: pr.GetValue(key)?.FullName,
                Executor: ShardExecutors.Create(pr.GetValue(executor), pr.GetValue(shards), pr.GetValue(sharedDir)?.FullName, pr.GetValue(partition),
                    pr.GetValue(gres), pr.GetValue(retries), pr.GetValue(sandbox)));
            var backendName = pr.GetValue(sandbox);
            var pipeline = GateCheckPipeline.Selecting(floor => Sandboxes.Select(backendName, floor));
            // Progress goes to stderr either way, so --json keeps stdout pure JSON.
            var outcome = await ProgressBars.RunAsync(progress => pipeline.CheckAsync(req, progress, note => Console.Error.WriteLine($"note: {note}"), ct));
            var (record, written) = (outcome.Record, outcome.Written);
            if (pr.GetValue(json)) Console.Out.WriteLine(record.ToJson());
            else PrintSummary(record, written.Decision);
            if (written.Attestation is not null) Console.Error.WriteLine($"Signed: {written.Attestation} (key {outcome.SignedBy})");
            else Console.Error.WriteLine("Unsigned: no --key given, so no attestation was written; this decision cannot be verified later.");
            return ExitCodes.For(record.Decision);
        }));
        return cmd;
    }

    private static void PrintSummary(DecisionRecord record, string path)
    {
        var console = Terminal.Out;
        var table = new Table().Border(TableBorder.Rounded).Title($"Gate — {Terminal.Show(record.PolicyName)} on {Terminal.Show(record.Model.Name)}");
        table.AddColumns("check", "type", "enforcement", "verdict", "summary");
        foreach (var c in record.Checks)
        {
            var colour = c.Verdict switch { Verdict.Pass => "green", Verdict.Fail => "red", _ => "yellow" };
            table.AddRow(Terminal.Show(c.Id), Terminal.Show(c.Type), c.Enforcement.ToString().ToLowerInvariant(),
                $"[{colour}]{c.Verdict.ToString().ToUpperInvariant()}[/]", Terminal.Show(c.Summary));
        }
        console.Write(table);
        var dc = record.Decision switch { GateDecision.Approve => "green", GateDecision.Reject => "red", _ => "yellow" };
        console.MarkupLine($"Decision: [bold {dc}]{record.Decision.ToString().ToUpperInvariant()}[/] (exit {ExitCodes.For(record.Decision)})");
        foreach (var r in record.Reasons) console.MarkupLine($"  - {Terminal.Show(r)}");
        foreach (var d in record.Datasets.Where(d => d.Overridden))
            console.MarkupLine($"[yellow]Warning:[/] {Terminal.Show(Gate.Core.Report.ReportWriter.OverrideText(d))}");
        if (record.Approvals.Count > 0)
            console.MarkupLine($"Policy approved by: {Terminal.Show(string.Join(", ", record.Approvals.Select(a => a.Signer)))}");
        console.MarkupLine($"Sandbox: {Terminal.Show(record.Sandbox.Backend)} (isolation {record.Sandbox.Isolation.Name()}, required {record.Sandbox.RequiredIsolation.Name()})");
        console.MarkupLine($"Written: {Terminal.Show(path)}");
    }
}
