using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Runtime;

namespace Gate.Benchmarks;

/// <summary>
/// Runs the trojan-scan check (default options, production runtime ONNX Runtime) on every model a generator run listed
/// in models.jsonl and writes one JSON line per model: ground truth, verdict, each detector's score, threshold,
/// suspect class and production attack success, and the scan's wall time. scripts/trojan/calibrate.sh and
/// scripts/trojan/benchmark.sh drive it; see scripts/trojan/README.md.
/// Usage: Gate.Benchmarks trojan-scan MODELS_DIR DIGITS_DATA_DIR OUT.jsonl [extra check YAML lines] (models already in OUT.jsonl are skipped)
/// </summary>
public static class TrojanScanBenchmark
{
    public static int Run(string[] args)
    {
        if (args.Length < 4) { Console.Error.WriteLine("usage: trojan-scan MODELS_DIR DIGITS_DATA_DIR OUT.jsonl [check option lines]"); return 3; }
        string models = Path.GetFullPath(args[1]), data = Path.GetFullPath(args[2]), output = Path.GetFullPath(args[3]), extra = args.Length > 4 ? args[4] : "";
        var work = Directory.CreateTempSubdirectory("gate-trojan-bench").FullName;
        var policyPath = Path.Combine(work, "policy.yaml");
        File.WriteAllText(policyPath, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: trojan-scan-benchmark }
            spec:
              model:
                format: onnx
                inputs:
                  input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
              runtime: onnxruntime
              seed: 1234
              datasets:
                test: { inputs: {{Path.Combine(data, "digits_test_x.npy")}}, labels: {{Path.Combine(data, "digits_test_y.npy")}} }
              checks:
                - id: trojan
                  type: trojan-scan
                  dataset: test
            {{string.Join("\n", extra.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => "      " + l))}}
            """);
        var policy = PolicyLoader.Load(policyPath);
        // Resumable: models already in the output are skipped, so a run can follow a generator that is still writing.
        var done = File.Exists(output) ? File.ReadLines(output).Select(l => (string?)JsonNode.Parse(l)?["file"]).ToHashSet() : [];
        using var outFile = new StreamWriter(output, append: true);
        foreach (var line in File.ReadAllLines(Path.Combine(models, "models.jsonl")))
        {
            var truth = JsonNode.Parse(line)!.AsObject();
            if (done.Contains((string)truth["file"]!)) continue;
            var file = Path.Combine(models, (string)truth["file"]!);
            var model = OnnxModelLoader.Load(file);
            var plan = CheckPlan.Create(policy, model);
            var planned = plan.Checks.Single();
            var (session, reason) = ProductionRuntime.Open(policy, model, new RuntimeOptions());
            if (session is null) { Console.Error.WriteLine($"production runtime unavailable: {reason}"); return 2; }
            using var _ = session;
            var evidence = new EvidenceWriter(Path.Combine(work, "evidence", Path.GetFileNameWithoutExtension(file))).ForCheck(planned.Spec.Id);
            var ctx = new CheckContext(model, policy, session, reason, evidence);
            var clock = Stopwatch.StartNew();
            var r = planned.Implementation!.RunAsync(ctx, planned.Spec, planned.Options!, CancellationToken.None).GetAwaiter().GetResult();
            double seconds = clock.Elapsed.TotalSeconds;
            var rec = new JsonObject
            {
                ["file"] = (string)truth["file"]!, ["arch"] = (string)truth["arch"]!, ["kind"] = (string)truth["kind"]!, ["seed"] = (int)truth["seed"]!,
                ["targets"] = new JsonArray(truth["triggers"]!.AsArray().Select(t => (JsonNode)(int)t!["target"]!).ToArray()),
                ["verdict"] = r.Verdict.ToString(), ["flaggedClass"] = r.Details["flaggedClass"]?.DeepClone(), ["seconds"] = Math.Round(seconds, 2), ["summary"] = r.Summary,
                ["loadAverage"] = LoadAverage(), ["detectors"] = r.Details["detectors"]?.DeepClone(),
            };
            outFile.WriteLine(rec.ToJsonString());
            outFile.Flush();
            Console.WriteLine($"{truth["file"]}: {r.Verdict} in {seconds:F1}s — {r.Summary}");
        }
        Directory.Delete(work, recursive: true);
        return 0;
    }

    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "?"; }
    }
}
