using System.CommandLine;
using Gate.Core;
using Gate.Core.Attestation;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Trust;
using Gate.Sandbox;
using Spectre.Console;

namespace Gate.Cli.Commands;

public static class CheckCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The ONNX model to judge.", Required = true };
        var policy = new Option<FileInfo>("--policy", "-p") { Description = "The deployment policy (YAML, apiVersion gate/v1).", Required = true };
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Output folder (default: ./gate-out). Gate owns decision.json, attestation.dsse.json, report.html, summary.md, junit.xml and evidence/ in it and replaces them as one set when a run completes; other files are left alone. A run that fails leaves none of them; two runs into one folder are refused (exit 3)." };
        var data = new Option<string[]>("--data") { Description = "Replace a policy dataset's file: NAME=x.npy (inputs) or NAME.labels=y.npy. Repeatable. Refused for a dataset the policy pins by sha256 unless it sets allowOverride: true; every override is recorded and flagged in the decision.", AllowMultipleArgumentsPerToken = false };
        var sandbox = new Option<string>("--sandbox") { Description = $"Sandbox backend: {string.Join(", ", SandboxSelector.Names)} (default: auto, the strongest available)." };
        var gpu = new Option<bool>("--gpu") { Description = "Ask for the CUDA execution provider even if the policy does not." };
        var json = new Option<bool>("--json") { Description = "Print decision.json to stdout instead of the summary table." };
        var key = new Option<FileInfo>("--key") { Description = "Sign the decision with this ECDSA P-256 private key (PKCS#8 PEM, see 'gate keygen'): writes attestation.dsse.json. Without it the decision is unsigned." };
        var trust = new Option<FileInfo>("--trust") { Description = "Refuse to run (exit 3) unless the policy carries enough valid approvals from the governance keys in this trust file (YAML: keys, required)." };
        var approvals = new Option<DirectoryInfo>("--approvals") { Description = "Folder of policy approvals for --trust (default: POLICY.approvals/ beside the policy)." };
        var cmd = new Command("check", """
            Judge a model against a policy and write a decision.
            Exit codes: 0 APPROVE, 1 REJECT, 2 INCONCLUSIVE, 3 bad input or usage, 4 internal error.
            Progress goes to stderr: bars on a terminal, else timestamped lines per check start and finish and a
            heartbeat every 10 s (GATE_PROGRESS_INTERVAL=seconds).
            Example: gate check --model examples/digits/digits-cnn.onnx --policy policies/digits-release.yaml --out out/
            """) { model, policy, outDir, data, sandbox, gpu, json, key, trust, approvals };
        cmd.SetAction((pr, ct) => Cli.Guard(async () =>
        {
            // The output folder first: it is locked, and an earlier run's results leave it, before anything can fail.
            using var output = OutputSet.Open(pr.GetValue(outDir)?.FullName ?? Path.GetFullPath("gate-out"));
            if (output.TookOverFrom is { } previous)
                Console.Error.WriteLine($"note: {output.OutDir} was left by a gate run that did not finish ({previous}); its partial outputs were removed");
            // Keys and trust are read before anything runs, so a bad key is bad input, not a lost run.
            using var signingKey = pr.GetValue(key) is { } k ? SigningKey.Load(k.FullName) : null;
            var trustPolicy = pr.GetValue(trust) is { } t ? TrustPolicy.Load(t.FullName) : null;
            var req = new GateCheckRequest(pr.GetValue(model)!.FullName, pr.GetValue(policy)!.FullName,
                output.WorkDir, Cli.ParsePairs(pr.GetValue(data), "--data"), pr.GetValue(gpu),
                trustPolicy, pr.GetValue(approvals)?.FullName);
            var backend = Sandboxes.Select(pr.GetValue(sandbox));
            // Progress goes to stderr either way, so --json keeps stdout pure JSON.
            var record = await ProgressBars.RunAsync(progress => new GateCheckPipeline(backend).RunAsync(req, progress, ct));
            ct.ThrowIfCancellationRequested(); // cancelled after the last check: still no decision
            // The private key is used only here, on the host, after the sandbox has returned.
            var written = output.Commit(record, signingKey);
            if (pr.GetValue(json)) Console.Out.WriteLine(record.ToJson());
            else PrintSummary(record, written.Decision);
            if (written.Attestation is not null) Console.Error.WriteLine($"Signed: {written.Attestation} (key {signingKey!.KeyId})");
            else Console.Error.WriteLine("Unsigned: no --key given, so no attestation was written; this decision cannot be verified later.");
            return record.ExitCode;
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
        console.MarkupLine($"Decision: [bold {dc}]{record.Decision.ToString().ToUpperInvariant()}[/] (exit {record.ExitCode})");
        foreach (var r in record.Reasons) console.MarkupLine($"  - {Terminal.Show(r)}");
        foreach (var d in record.Datasets.Where(d => d.Overridden))
            console.MarkupLine($"[yellow]Warning:[/] {Terminal.Show(Gate.Core.Report.ReportWriter.OverrideText(d))}");
        if (record.Approvals.Count > 0)
            console.MarkupLine($"Policy approved by: {Terminal.Show(string.Join(", ", record.Approvals.Select(a => a.Signer)))}");
        console.MarkupLine($"Sandbox: {Terminal.Show(record.Sandbox.Backend)} (isolation {Terminal.Show(record.Sandbox.Isolation)}, required {Terminal.Show(record.Sandbox.RequiredIsolation)})");
        console.MarkupLine($"Written: {Terminal.Show(path)}");
    }
}
