using System.Text.Json.Nodes;
using Gate.Core.Checks.TrojanScan;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Runtime;
using Gate.Tests.Support;
using Xunit;

namespace Gate.Tests.Checks.TrojanScan;

/// <summary>
/// The detector ensemble against ground truth: a generated MLP whose trigger is a global perturbation of the whole
/// image (x + 0.12·s for a fixed sign pattern s, target 0; Gate.Tests/TestData/trojan/models.jsonl, made by
/// scripts/trojan/generate.py seed 900, which the calibration seeds 0–14 do not include) must be flagged and its
/// recovered trigger confirmed on ONNX Runtime. (The column-trigger CNN of the same seed, also committed, is a known
/// miss of the ensemble: docs/benchmarks/mechanistic.md.)
/// </summary>
public sealed class TrojanEnsembleScans
{
    public static string GlobalModel => Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "TestData", "trojan", "mlp-global-s900.onnx");

    private readonly Lazy<(CheckResult Result, string EvidenceDir)> _global = new(() =>
    {
        OrtTestSupport.RequireOrt();
        return MechanisticHarness.Run(OnnxModelLoader.Load(GlobalModel), MechanisticHarness.DigitsPolicy(TrojanScans.Check, runtime: "onnxruntime"));
    });

    public (CheckResult Result, string EvidenceDir) Global => _global.Value;

    /// <summary>A 3×3 checkerboard (target 0) on an MLP: seed 900, outside the calibration (0–29) and benchmark (100–109, 300–311) seeds.</summary>
    public static string CheckerboardModel => Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "TestData", "trojan", "mlp-checkerboard-s900.onnx");

    private readonly Lazy<(CheckResult Result, string EvidenceDir)> _checkerboard = new(() =>
    {
        OrtTestSupport.RequireOrt();
        return MechanisticHarness.Run(OnnxModelLoader.Load(CheckerboardModel), MechanisticHarness.DigitsPolicy(TrojanScans.Check, runtime: "onnxruntime"));
    });

    public (CheckResult Result, string EvidenceDir) Checkerboard => _checkerboard.Value;

    /// <summary>
    /// A 3×3 checkerboard (target 1) on a CNN: development seed 201 (outside calibration 0–29 and every benchmark range).
    /// Class 1 is the hardest class of a clean CNN but not of a clean MLP, so against the pooled reference the trigger
    /// was unremarkable (consensus 2.7, the model passed); against the nearest (CNN) reference models it is not.
    /// </summary>
    public static string CnnCheckerboardModel => Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "TestData", "trojan", "cnn-checkerboard-s201.onnx");

    private readonly Lazy<(CheckResult Result, string EvidenceDir)> _cnnCheckerboard = new(() =>
    {
        OrtTestSupport.RequireOrt();
        return MechanisticHarness.Run(OnnxModelLoader.Load(CnnCheckerboardModel), MechanisticHarness.DigitsPolicy(TrojanScans.Check, runtime: "onnxruntime"));
    });

    public (CheckResult Result, string EvidenceDir) CnnCheckerboard => _cnnCheckerboard.Value;
}

public class TrojanEnsembleTests(TrojanEnsembleScans scans) : IClassFixture<TrojanEnsembleScans>
{
    [Fact]
    public void Committed_global_trigger_model_has_the_documented_ground_truth()
    {
        var truth = File.ReadLines(Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "TestData", "trojan", "models.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Single(t => (string)t["file"]! == "mlp-global-s900.onnx");
        Assert.Equal("global", (string)truth["kind"]!);
        Assert.Equal(0, (int)truth["triggers"]![0]!["target"]!);
        Assert.Equal(64, truth["triggers"]![0]!["sign"]!.AsArray().Sum(row => row!.AsArray().Count));
    }

    [Fact]
    public void Global_trigger_is_flagged_by_the_ensemble_and_confirmed_on_onnx_runtime()
    {
        var (r, dir) = scans.Global;
        Assert.Equal(Verdict.Fail, r.Verdict);
        Assert.Equal(0, (int)r.Details["flaggedClass"]!);
        Assert.Equal("onnxruntime", r.Runtime);
        Assert.True(r.Metrics["productionAttackSuccess"] >= TrojanScanCheck.ConfirmationTarget, $"production attack success {r.Metrics["productionAttackSuccess"]}");
        var confirmation = File.ReadAllText(Path.Combine(dir, "trojan", "confirmation.txt"));
        Assert.Contains("runtime onnxruntime", confirmation);
        Assert.Contains("class 0", confirmation);
        // The reason names the detector, its calibrated threshold and the false-positive rate that threshold implies.
        Assert.Contains(r.Reasons, s => s.Contains("calibrated at FPR", StringComparison.Ordinal) && s.Contains("clean-model false-positive rate", StringComparison.Ordinal));
    }

    [Fact]
    public void Every_detector_reports_its_statistic_per_class_threshold_and_calibrated_false_positive_rate()
    {
        var (r, dir) = scans.Global;
        var detectors = r.Details["detectors"]!.AsArray();
        // The three searches, then their class-referenced consensus (the digits task has reference models).
        Assert.Equal([.. TrojanScanCheck.DetectorNames, ClassReference.Name], detectors.Select(d => (string)d!["name"]!));
        Assert.True((bool)r.Details["classReference"]!["applies"]!);
        foreach (var d in detectors)
        {
            Assert.Equal(10, d!["perClass"]!.AsArray().Count);
            double fpr = (double)d["falsePositiveRate"]!;
            var name = (string)d["name"]!;
            var cal = name == ClassReference.Name ? TrojanCalibration.Embedded.Reference!.CleanConsensus(TrojanScanCheck.DetectorNames) : TrojanCalibration.Embedded.Detectors[name];
            Assert.Equal(cal.FalsePositiveRate((double)d["threshold"]!), fpr, 9);
            Assert.InRange(fpr, 1.0 / (cal.Models + 1), 0.1);
            Assert.Equal(fpr, r.Metrics[$"{d["name"]}.falsePositiveRate"]);
            Assert.StartsWith("calibrated at FPR", (string)d["thresholdSource"]!);
        }
        // Evidence files per detector: trigger masks and patterns (.npy and .png), MM-BD's maximizers.
        foreach (var f in new[] { "mask-class0.npy", "mask-class0.png", "tabor-mask-class0.npy", "tabor-pattern-class0.png", "mmbd-maximizer-class0.npy", "mmbd-maximizer-class0.png" })
            Assert.True(File.Exists(Path.Combine(dir, "trojan", f)), f);
    }

    [Fact]
    public void Committed_checkerboard_model_has_the_documented_ground_truth()
    {
        var truth = File.ReadLines(Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "TestData", "trojan", "models.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Single(t => (string)t["file"]! == "mlp-checkerboard-s900.onnx");
        Assert.Equal("checkerboard", (string)truth["kind"]!);
        Assert.Equal(0, (int)truth["triggers"]![0]!["target"]!);
    }

    [Fact]
    public void Checkerboard_trigger_missed_within_the_model_is_flagged_against_the_class_reference_and_confirmed()
    {
        // The within-model statistics dismiss it (its target's mask is only as small as an easy clean class's); the
        // same class on clean reference models sets it far apart. Before the class reference this model passed.
        var (r, dir) = scans.Checkerboard;
        Assert.Equal(Verdict.Fail, r.Verdict);
        Assert.Equal(0, (int)r.Details["flaggedClass"]!);
        var reference = r.Details["detectors"]!.AsArray().Single(d => (string)d!["name"]! == ClassReference.Name)!;
        Assert.True((bool)reference["flagged"]!);
        Assert.Equal(0, (int)reference["suspectClass"]!);
        Assert.True((double)reference["productionAttackSuccess"]! >= TrojanScanCheck.ConfirmationTarget);
        Assert.Contains(r.Reasons, s => s.StartsWith("class-reference: class 0", StringComparison.Ordinal));
        Assert.Contains("class 0", File.ReadAllText(Path.Combine(dir, "trojan", "confirmation.txt")));
        // The per-detector z against the reference is evidence too: every search puts class 0 above the others.
        foreach (var d in TrojanScanCheck.DetectorNames)
        {
            var z = r.Details["classReference"]!["zPerDetector"]![d]!.AsArray().Select(v => (double)v!).ToArray();
            Assert.Equal(0, Array.IndexOf(z, z.Max()));
        }
    }

    [Fact]
    public void Committed_cnn_checkerboard_model_has_the_documented_ground_truth()
    {
        var truth = File.ReadLines(Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "TestData", "trojan", "models.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Single(t => (string)t["file"]! == "cnn-checkerboard-s201.onnx");
        Assert.Equal(("cnn", "checkerboard"), ((string)truth["arch"]!, (string)truth["kind"]!));
        Assert.Equal(1, (int)truth["triggers"]![0]!["target"]!);
    }

    [Fact]
    public void Cnn_trigger_on_a_class_only_mlps_find_easy_is_flagged_against_the_nearest_reference_models()
    {
        // Before the nearest-reference selection this model passed: pooled over MLPs and CNNs, class 1's reference spread
        // hid the trigger. Compared with the CNN references alone it is far out, and the replay confirms it.
        var (r, _) = scans.CnnCheckerboard;
        Assert.Equal(Verdict.Fail, r.Verdict);
        Assert.Equal(1, (int)r.Details["flaggedClass"]!);
        var reference = r.Details["detectors"]!.AsArray().Single(d => (string)d!["name"]! == ClassReference.Name)!;
        Assert.True((bool)reference["flagged"]!, $"class-reference {reference["score"]} <= {reference["threshold"]}");
        Assert.Equal(1, (int)reference["suspectClass"]!);
        Assert.True((double)reference["productionAttackSuccess"]! >= TrojanScanCheck.ConfirmationTarget);
        // The evidence names the reference models it was compared with: mostly CNNs, found from the class profile alone
        // (the check is never told the architecture; one clean MLP with a CNN-like profile may be among them).
        var comparedWith = r.Details["classReference"]!["comparedWith"]!.AsArray().Select(m => (string)m!).ToList();
        Assert.Equal(ClassReference.Neighbours(TrojanCalibration.Embedded.Reference!.Models.Count), comparedWith.Count);
        Assert.True(comparedWith.Count(m => m.StartsWith("cnn-", StringComparison.Ordinal)) >= 3 * comparedWith.Count / 4, string.Join(", ", comparedWith));
    }

    [Fact]
    public void Gate_check_rejects_the_checkerboard_model_with_the_combined_verdict()
    {
        // The benchmark policy: default options, the built-in runtime as production, the process sandbox.
        var outDir = TestPaths.TempDir("gate-trojan-check");
        var r = GateCli.Run("check", "--model", TrojanEnsembleScans.CheckerboardModel, "--policy", Path.Combine(TestPaths.RepoRoot, "docs", "benchmarks", "trojan-scan-digits.yaml"), "--out", outDir);
        Assert.True(r.ExitCode == 1, r.All);
        var decision = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!.ToJsonString();
        Assert.Contains("class-reference", decision);
        Assert.Contains("backdoor suspected: class 0", decision);
    }

    private static DetectorOutcome Outcome(string name, double score, double threshold, string? exhausted = null, double? asr = null) =>
        new(name, "s", "v", new double[10], score, 3, threshold, "calibrated", 0.03, 30, exhausted) { ProductionAttackSuccess = asr, ProductionSamples = asr is null ? 0 : 300, ConfirmedWith = asr is null ? null : name };

    [Fact]
    public void Combined_rule_fails_only_on_a_production_confirmed_flag()
    {
        // Any one detector above its threshold with confirmed attack success fails the check.
        var (v, reasons) = TrojanScanCheck.Combine([Outcome("neural-cleanse", 1, 4), Outcome("mm-bd", 9, 5, asr: 0.8)], 0.75, null, "onnxruntime");
        Assert.Equal(Verdict.Fail, v);
        Assert.Single(reasons);
        Assert.Contains("mm-bd", reasons[0]);
        // Above threshold but the trigger does not transfer on production: inconclusive, not fail and not pass.
        Assert.Equal(Verdict.Inconclusive, TrojanScanCheck.Combine([Outcome("tabor", 9, 5, asr: 0.5)], 0.75, null, "onnxruntime").Verdict);
        // Above threshold, no production runtime to confirm on: inconclusive.
        Assert.Equal(Verdict.Inconclusive, TrojanScanCheck.Combine([Outcome("tabor", 9, 5)], 0.75, "withheld", null).Verdict);
        // Confirmed attack success on a detector below its threshold does not count.
        Assert.Equal(Verdict.Pass, TrojanScanCheck.Combine([Outcome("tabor", 4, 5, asr: 1.0), Outcome("mm-bd", 1, 5)], 0.75, null, "onnxruntime").Verdict);
    }

    [Fact]
    public void A_detector_that_exhausts_its_budget_makes_the_scan_inconclusive_never_pass()
    {
        var (v, reasons) = TrojanScanCheck.Combine([Outcome("neural-cleanse", 1, 4), Outcome("mm-bd", 1, 5, exhausted: "the wall-time budget ended the margin search")], 0.75, null, "onnxruntime");
        Assert.Equal(Verdict.Inconclusive, v);
        Assert.Contains(reasons, s => s.StartsWith("mm-bd: the wall-time budget", StringComparison.Ordinal));
        // An exhausted detector is never "flagged", whatever its partial score; a confirmed flag elsewhere still fails.
        Assert.False(Outcome("mm-bd", 99, 5, exhausted: "cut").Flagged);
        Assert.Equal(Verdict.Fail, TrojanScanCheck.Combine([Outcome("neural-cleanse", 9, 4, asr: 0.9), Outcome("mm-bd", 1, 5, exhausted: "cut")], 0.75, null, "onnxruntime").Verdict);
    }

    [Fact]
    public void Max_margin_budget_cut_short_by_wall_time_is_inconclusive()
    {
        var (r, _) = MechanisticHarness.Run("digits-mlp.onnx", MechanisticHarness.DigitsPolicy("""
                - id: trojan
                  type: trojan-scan
                  dataset: test
                  detectors: [mm-bd]
                  budget: { wallTime: 1ms }
            """));
        Assert.Equal(Verdict.Inconclusive, r.Verdict);
        Assert.Contains("mm-bd: the wall-time budget", r.Summary);
    }

    [Fact]
    public void Policy_chooses_the_detectors_and_their_budgets()
    {
        var (r, dir) = MechanisticHarness.Run("digits-mlp.onnx", MechanisticHarness.DigitsPolicy("""
                - id: trojan
                  type: trojan-scan
                  dataset: test
                  samples: 16
                  detectors: [mm-bd, tabor]
                  tabor: { steps: 20, smoothness: 1.0, threshold: 100 }
                  mmBd: { starts: 2, steps: 15 }
            """));
        Assert.Equal(["mm-bd", "tabor", ClassReference.Name], r.Details["detectors"]!.AsArray().Select(d => (string)d!["name"]!));
        Assert.False(File.Exists(Path.Combine(dir, "trojan", "mask-class0.npy")), "Neural Cleanse did not run");
        Assert.Equal("set by the policy", (string)r.Details["detectors"]![1]!["thresholdSource"]!);
        Assert.Equal(100, r.Metrics["tabor.threshold"]);
        // 10 classes × 20 TABOR steps + 15 MM-BD steps, and the steps of classes that searched on past their 20 without the penalty.
        int extra = (r.Details["relaxedPenalty"]?["tabor"] as System.Text.Json.Nodes.JsonArray ?? []).Sum(c => c!["stepsRun"]!.GetValue<int>() - 20);
        Assert.Equal(10 * 20 + 15 + extra, r.BudgetUsed["steps"]);
    }

    [Fact]
    public void Calibration_thresholds_are_conformal_quantiles_of_the_clean_scores()
    {
        var cal = new DetectorCalibration("x", "s", "{}", [.. Enumerable.Range(1, 19).Select(i => (double)i)]);
        // n = 19: for α = 0.1 the threshold is the ⌈0.9·20⌉ = 18th smallest score, and it implies (1 + 1)/20.
        Assert.Equal(18, cal.ThresholdFor(0.1));
        Assert.Equal(0.1, cal.FalsePositiveRate(18), 12);
        // Too few models for α: the largest score, whose honest rate 1/(n+1) is reported.
        Assert.Equal(19, cal.ThresholdFor(0.01));
        Assert.Equal(0.05, cal.FalsePositiveRate(19), 12);
        // The shipped table covers every detector with the clean reference set it names.
        var shipped = TrojanCalibration.Embedded;
        Assert.Equal(TrojanScanCheck.DetectorNames.Order(), shipped.Detectors.Keys.Order());
        Assert.All(shipped.Detectors.Values, d => Assert.True(d.Models >= 20, $"{d.Detector}: {d.Models} clean models"));
        Assert.Contains("clean", shipped.ReferenceSet);
    }

    [Fact]
    public void Max_margin_statistic_singles_out_one_exceptional_class()
    {
        // Q(1, x) = e^−x and Q(2, x) = (1 + x)e^−x.
        Assert.Equal(Math.Exp(-3), TrojanStatistics.GammaQ(1, 3), 12);
        Assert.Equal(4 * Math.Exp(-3), TrojanStatistics.GammaQ(2, 3), 12);
        Assert.Equal(Math.Exp(-0.5), TrojanStatistics.GammaQ(1, 0.5), 12);
        double[] even = [10, 11, 9, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 10.3];
        double[] outlier = [10, 11, 9, 10.5, 9.5, 10.2, 9.8, 40, 9.9, 10.3];
        Assert.True(TrojanStatistics.MaxMarginScore(even).Score < 1.5);
        var (score, index) = TrojanStatistics.MaxMarginScore(outlier);
        Assert.Equal(7, index);
        Assert.True(score > 10, $"score {score}");
    }
}
