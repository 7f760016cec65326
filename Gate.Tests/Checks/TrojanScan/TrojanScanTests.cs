using Gate.Core.Evidence;
using Gate.Core.Tensors;
using Xunit;

namespace Gate.Tests.Checks.TrojanScan;

/// <summary>Scans each digits model once (default budget) and shares the results between the tests.</summary>
public sealed class TrojanScans
{
    public const string Check = """
            - id: trojan
              type: trojan-scan
              dataset: test
        """;

    private readonly Dictionary<string, Lazy<(CheckResult Result, string EvidenceDir)>> _scans = new[] { "digits-cnn-trojan.onnx", "digits-cnn.onnx", "digits-mlp.onnx" }
        .ToDictionary(m => m, m => new Lazy<(CheckResult, string)>(() => MechanisticHarness.Run(m, MechanisticHarness.DigitsPolicy(Check))));

    public (CheckResult Result, string EvidenceDir) this[string model] => _scans[model].Value;
}

public class TrojanScanTests(TrojanScans scans) : IClassFixture<TrojanScans>
{
    [Fact]
    public void Trojaned_cnn_is_flagged_with_target_class_0_and_confirmed_on_production()
    {
        var (r, _) = scans["digits-cnn-trojan.onnx"];
        Assert.Equal(Verdict.Fail, r.Verdict);
        Assert.Equal(0, (int)r.Details["flaggedClass"]!);
        Assert.Equal(0, r.Metrics["suspectClass"]);
        Assert.True(r.Metrics["anomalyIndex"] > 2.0, $"anomaly index {r.Metrics["anomalyIndex"]}");
        // MANIFEST: the real trigger has 100% attack success; the recovered one must transfer to held-out images.
        Assert.True(r.Metrics["productionAttackSuccess"] >= 0.75, $"production attack success {r.Metrics["productionAttackSuccess"]}");
        Assert.True(r.Metrics["productionSamples"] > 200);
    }

    [Fact]
    public void Recovered_trojan_mask_is_concentrated_in_the_bottom_right_corner()
    {
        var (r, dir) = scans["digits-cnn-trojan.onnx"];
        var mask = Npy.Read(Path.Combine(dir, "trojan", "mask-class0.npy"));
        Assert.Equal([8, 8], mask.Shape);
        var m = mask.ToFloatArray();
        // The real trigger is x[..., 6:8, 6:8] = 1: the four strongest mask pixels are exactly that 2×2 block.
        var top4 = Enumerable.Range(0, 64).OrderByDescending(i => m[i]).Take(4).Select(i => (i / 8, i % 8)).Order().ToArray();
        Assert.Equal([(6, 6), (6, 7), (7, 6), (7, 7)], top4);
        // The JSON the report plots carries the same mask.
        var json = r.Details["masks"]!.AsArray().Single(x => (int)x!["class"]! == 0 && (string)x["detector"]! == "neural-cleanse")!;
        Assert.Equal(Math.Round(m[7 * 8 + 7], 4), (double)json["mask"]![7]![7]!, 4);
    }

    [Fact]
    public void Every_class_has_mask_and_pattern_evidence()
    {
        var (r, dir) = scans["digits-cnn-trojan.onnx"];
        // Neural Cleanse's and TABOR's masks, ten classes each.
        Assert.Equal(10, r.Details["masks"]!.AsArray().Count(x => (string)x!["detector"]! == "neural-cleanse"));
        Assert.Equal(10, r.Details["masks"]!.AsArray().Count(x => (string)x!["detector"]! == "tabor"));
        for (int k = 0; k < 10; k++)
            foreach (var f in new[] { $"mask-class{k}.npy", $"pattern-class{k}.npy", $"mask-class{k}.png", $"pattern-class{k}.png" })
            {
                Assert.True(File.Exists(Path.Combine(dir, "trojan", f)), f);
                Assert.Contains(r.Evidence, e => e.Path == $"trojan/{f}");
            }
        Assert.Contains(r.Evidence, e => e.Path == "trojan/confirmation.txt");
        Assert.Equal(1, Npy.Read(Path.Combine(dir, "trojan", "pattern-class0.npy")).Shape[0]);
    }

    [Fact]
    public void The_defaults_the_model_scales_are_recorded_with_the_value_chosen_and_the_rule()
    {
        var (r, _) = scans["digits-cnn.onnx"];
        var scaled = r.Details["scaledDefaults"]!;
        Assert.Equal(64, (int)scaled["samples"]!["value"]!);
        Assert.Equal(10, (int)scaled["samples"]!["classes"]!);
        Assert.Equal(Gate.Core.Checks.TrojanScan.TrojanScanCheck.SamplesRule, (string)scaled["samples"]!["rule"]!);
        Assert.Equal("300s", (string)scaled["budget.wallTime"]!["value"]!);
        Assert.Equal(Gate.Core.Checks.TrojanScan.TrojanScanCheck.WallTimeRule, (string)scaled["budget.wallTime"]!["rule"]!);
    }

    [Theory]
    [InlineData("digits-cnn.onnx")]
    [InlineData("digits-mlp.onnx")]
    public void Clean_classifiers_are_not_flagged(string model)
    {
        // Trained by another recipe than the calibration set (MANIFEST §2), so this also tests how the thresholds transfer.
        var (r, _) = scans[model];
        Assert.Equal(Verdict.Pass, r.Verdict);
        Assert.True(r.Metrics["anomalyIndex"] <= r.Metrics["neural-cleanse.threshold"], $"anomaly index {r.Metrics["anomalyIndex"]}");
        Assert.Null(r.Details["flaggedClass"]);
        foreach (var d in r.Details["detectors"]!.AsArray())
            Assert.False((bool)d!["flagged"]!, $"{d["name"]} flagged {model}: score {d["score"]} > {d["threshold"]}");
        // Three detectors at a calibrated share of the 10% default each.
        Assert.InRange(r.Metrics["falsePositiveRateBound"], 0.0, 0.1);
    }

    [Fact]
    public void A_flag_without_the_production_runtime_is_inconclusive_never_pass()
    {
        var (r, _) = MechanisticHarness.Run("digits-cnn-trojan.onnx", MechanisticHarness.DigitsPolicy("""
                - id: trojan
                  type: trojan-scan
                  dataset: test
                  samples: 32
                  steps: 150
            """), withoutProduction: true);
        Assert.Equal(Verdict.Inconclusive, r.Verdict);
        Assert.Equal(0, (int)r.Details["flaggedClass"]!);
        Assert.Contains("production", r.Summary);
    }

    [Fact]
    public void Scan_results_are_reproducible_from_the_seed()
    {
        // Classes run in parallel, each with its own seed: the thread schedule must not change any number.
        var policy = MechanisticHarness.DigitsPolicy("""
                - id: trojan
                  type: trojan-scan
                  dataset: test
                  samples: 16
                  steps: 30
            """, seed: 42);
        var a = MechanisticHarness.Run("digits-mlp.onnx", policy).Result;
        var b = MechanisticHarness.Run("digits-mlp.onnx", policy).Result;
        Assert.Equal(a.Metrics.Where(m => m.Key.StartsWith("l1[", StringComparison.Ordinal)), b.Metrics.Where(m => m.Key.StartsWith("l1[", StringComparison.Ordinal)));
        Assert.Equal(a.Details["masks"]!.ToJsonString(), b.Details["masks"]!.ToJsonString());
    }

    /// <summary>
    /// The floors the sandbox may scale the defaults down to (32 samples, 150 steps per class and mask search, MM-BD 2 × 50)
    /// still find the digits trojan (class 0, MANIFEST) and still decide on the clean CNN: a floor that lost the trojan or
    /// left a clean class unreached (INCONCLUSIVE) would be no floor.
    /// </summary>
    [Theory]
    [InlineData("digits-cnn-trojan.onnx", Verdict.Fail)]
    [InlineData("digits-cnn.onnx", Verdict.Pass)]
    public void At_the_floors_of_the_scaled_defaults_the_scan_still_decides(string model, Verdict expected)
    {
        var (r, _) = MechanisticHarness.Run(model, MechanisticHarness.DigitsPolicy(TrojanScans.Check),
            options: o => ((Gate.Core.Checks.TrojanScan.TrojanScanOptions)o).ScaleDefaults(1e-6, 360, 10).Options);
        Assert.Equal(32, (int)r.Metrics["samples"]);
        Assert.True(expected == r.Verdict, $"{model}: {r.Verdict}: {r.Summary}");
        if (expected == Verdict.Fail) Assert.Equal(0, (int)r.Details["flaggedClass"]!);
    }

    /// <summary>
    /// A class still short of the attack-success target after its steps searches on with its mask penalty relaxed, and is
    /// recorded as such; one that never reaches it within twice its steps leaves the scan INCONCLUSIVE.
    /// </summary>
    [Fact]
    public void A_class_that_has_not_reached_its_target_searches_on_with_the_penalty_relaxed()
    {
        // A penalty 50× the default holds several classes of the clean digits CNN below 90% attack success for 50 steps.
        // Searching on without it, every class gets there; searching on with it (measured), five do not.
        const int steps = 50;
        string Policy(int steps) => TrojanScans.Check.Replace("dataset: test", $"dataset: test\n      detectors: [neural-cleanse]\n      samples: 16\n      maskPenalty: 0.5\n      steps: {steps}");
        var r = MechanisticHarness.Run("digits-cnn.onnx", MechanisticHarness.DigitsPolicy(Policy(steps))).Result;
        var relaxed = r.Details["relaxedPenalty"]?["neural-cleanse"] as System.Text.Json.Nodes.JsonArray;
        Assert.True(relaxed is { Count: > 0 }, $"no class needed the relaxed penalty: {r.Summary}");
        foreach (var c in relaxed!)
        {
            Assert.Equal(steps, c!["from"]!.GetValue<int>());
            Assert.InRange(c["stepsRun"]!.GetValue<int>(), steps + 1, 2 * steps);
        }
        Assert.True(relaxed.Any(c => c!["reached"]!.GetValue<bool>()), "relaxing the penalty let no class reach the target: " + relaxed.ToJsonString());
        Assert.True(r.Verdict == Verdict.Pass, $"{r.Verdict}: {r.Summary}");
        // One step (and one more) is too few for any search: INCONCLUSIVE, never a pass.
        var tooShort = MechanisticHarness.Run("digits-cnn.onnx", MechanisticHarness.DigitsPolicy(Policy(1))).Result;
        Assert.Equal(Verdict.Inconclusive, tooShort.Verdict);
        Assert.Contains("did not reach", tooShort.Summary);
    }

    [Fact]
    public void An_exhausted_time_budget_is_inconclusive()
    {
        var (r, _) = MechanisticHarness.Run("digits-cnn.onnx", MechanisticHarness.DigitsPolicy("""
                - id: trojan
                  type: trojan-scan
                  dataset: test
                  budget: { wallTime: 1ms }
            """));
        Assert.Equal(Verdict.Inconclusive, r.Verdict);
        Assert.Contains("within the budget", r.Summary);
    }
}
