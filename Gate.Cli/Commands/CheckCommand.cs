using System.CommandLine;
using Gate.Core;
using Gate.Core.Audit;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Sandbox;
using Spectre.Console;

namespace Gate.Cli.Commands;

public static class CheckCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The ONNX model to judge.", Required = true };
        var policy = new Option<FileInfo>("--policy", "-p") { Description = "The deployment policy (YAML, apiVersion gate/v1).", Required = true };
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Output folder for decision.json and evidence/ (default: ./gate-out)." };
        var data = new Option<string[]>("--data") { Description = "Override a dataset path from the policy: NAME=x.npy (inputs) or NAME.labels=y.npy. Repeatable.", AllowMultipleArgumentsPerToken = false };
        var sandbox = new Option<string>("--sandbox") { Description = $"Sandbox backend: {string.Join(", ", SandboxSelector.Names)} (default: auto, the strongest available)." };
        var gpu = new Option<bool>("--gpu") { Description = "Ask for the CUDA execution provider even if the policy does not." };
        var json = new Option<bool>("--json") { Description = "Print decision.json to stdout instead of the summary table." };
        var key = new Option<FileInfo>("--key") { Description = "Sign the decision with this ECDSA P-256 private key (PKCS#8 PEM, see 'gate keygen'): writes attestation.dsse.json. Without it the decision is unsigned." };
        var trust = new Option<FileInfo>("--trust") { Description = "Refuse to run (exit 3) unless the policy carries enough valid approvals from the governance keys in this trust file (YAML: keys, required)." };
        var approvals = new Option<DirectoryInfo>("--approvals") { Description = "Folder of policy approvals for --trust (default: POLICY.approvals/ beside the policy)." };
        var cmd = new Command("check", """
            Judge a model against a policy and write a decision.
            Exit codes: 0 APPROVE, 1 REJECT, 2 INCONCLUSIVE, 3 bad input or usage, 4 internal error.
            Example: gate check --model examples/digits/digits-cnn.onnx --policy policies/digits-release.yaml --out out/
            """) { model, policy, outDir, data, sandbox, gpu, json, key, trust, approvals };
        cmd.SetAction((pr, ct) => Cli.Guard(async () =>
        {
            // Keys and trust are read before anything runs, so a bad key is bad input, not a lost run.
            using var signingKey = pr.GetValue(key) is { } k ? SigningKey.Load(k.FullName) : null;
            var trustPolicy = pr.GetValue(trust) is { } t ? TrustPolicy.Load(t.FullName) : null;
            var req = new GateCheckRequest(pr.GetValue(model)!.FullName, pr.GetValue(policy)!.FullName,
                pr.GetValue(outDir)?.FullName ?? Path.GetFullPath("gate-out"), Cli.ParsePairs(pr.GetValue(data), "--data"), pr.GetValue(gpu),
                trustPolicy, pr.GetValue(approvals)?.FullName);
            DecisionAttestation.RemoveStale(req.OutDir);
            var backend = SandboxSelector.Select(pr.GetValue(sandbox));
            var record = pr.GetValue(json)
                ? await new GateCheckPipeline(backend).RunAsync(req, null, ct)
                : await ProgressBars.RunAsync(progress => new GateCheckPipeline(backend).RunAsync(req, progress, ct));
            // The model signature comes first, so that the decision (and its attestation) records its digest.
            if (signingKey is not null) record.ModelSignature = ModelSignature.WriteFor(record, req.OutDir, signingKey);
            var path = GateCheckPipeline.WriteDecision(record, req.OutDir);
            Gate.Core.Report.ReportWriter.Write(record, req.OutDir); // report.html, summary.md, junit.xml beside decision.json
            // The private key is used only here, on the host, after the sandbox has returned and every output is written.
            var attestation = signingKey is null ? null : DecisionAttestation.Write(record, req.OutDir, signingKey);
            if (pr.GetValue(json)) Console.Out.WriteLine(record.ToJson());
            else PrintSummary(record, path);
            if (attestation is not null) Console.Error.WriteLine($"Signed: {attestation} (key {signingKey!.KeyId})");
            else Console.Error.WriteLine("Unsigned: no --key given, so no attestation was written; this decision cannot be verified later.");
            return record.ExitCode;
        }));
        return cmd;
    }

    private static void PrintSummary(DecisionRecord record, string path)
    {
        var console = AnsiConsole.Console;
        var table = new Table().Border(TableBorder.Rounded).Title($"Gate — {Markup.Escape(record.PolicyName)} on {Markup.Escape(record.Model.Name)}");
        table.AddColumns("check", "type", "enforcement", "verdict", "summary");
        foreach (var c in record.Checks)
        {
            var colour = c.Verdict switch { Verdict.Pass => "green", Verdict.Fail => "red", _ => "yellow" };
            table.AddRow(Markup.Escape(c.Id), Markup.Escape(c.Type), c.Enforcement.ToString().ToLowerInvariant(),
                $"[{colour}]{c.Verdict.ToString().ToUpperInvariant()}[/]", Markup.Escape(c.Summary));
        }
        console.Write(table);
        var dc = record.Decision switch { GateDecision.Approve => "green", GateDecision.Reject => "red", _ => "yellow" };
        console.MarkupLine($"Decision: [bold {dc}]{record.Decision.ToString().ToUpperInvariant()}[/] (exit {record.ExitCode})");
        foreach (var r in record.Reasons) console.MarkupLine($"  - {Markup.Escape(r)}");
        if (record.Approvals.Count > 0)
            console.MarkupLine($"Policy approved by: {Markup.Escape(string.Join(", ", record.Approvals.Select(a => a.Signer)))}");
        console.MarkupLine($"Sandbox: {Markup.Escape(record.Sandbox.Backend)} (isolation {Markup.Escape(record.Sandbox.Isolation)}, required {Markup.Escape(record.Sandbox.RequiredIsolation)})");
        console.MarkupLine($"Written: {Markup.Escape(path)}");
    }
}
