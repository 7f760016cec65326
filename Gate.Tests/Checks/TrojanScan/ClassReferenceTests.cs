using Gate.Core.Checks.TrojanScan;
using Gate.Tests.Support;
using Xunit;

namespace Gate.Tests.Checks.TrojanScan;

/// <summary>
/// The class-referenced consensus (<see cref="ClassReference"/>): a class compared with the same class on clean
/// reference models, which is what catches compact triggers whose mask is only as small as an easy clean class's.
/// </summary>
public class ClassReferenceTests
{
    private static readonly string[] Nc = [TrojanScanCheck.NeuralCleanse];

    /// <summary>20 clean reference models in which class 2 is always the easy one (mask ≈ 6 against ≈ 9), with a little noise.</summary>
    private static ClassReference EasyClassTwo()
    {
        var rng = new Random(7);
        var models = Enumerable.Range(0, 20).Select(_ => Enumerable.Range(0, 10).Select(t => (t == 2 ? 6.0 : 9.0) * (1 + 0.04 * (rng.NextDouble() - 0.5))).ToArray()).ToArray();
        return new ClassReference
        {
            DatasetSha256 = "abc", Classes = 10, InputShape = [1, 8, 8], Models = models.Select((_, i) => $"m{i}").ToList(),
            PerClass = new Dictionary<string, double[][]> { [TrojanScanCheck.NeuralCleanse] = models },
        };
    }

    private static double[] Masks(int smallClass) => Enumerable.Range(0, 10).Select(t => t == smallClass ? 6.0 : 9.0).ToArray();

    [Fact]
    public void A_class_as_small_as_an_easy_clean_class_is_flagged_against_its_own_reference_not_against_the_other_classes()
    {
        var reference = EasyClassTwo();
        var threshold = reference.CleanConsensus(Nc).ThresholdFor(0.05);
        // Within the model, "class 2 small" and "class 7 small" are the same picture: Neural Cleanse's anomaly index cannot tell them apart.
        Assert.Equal(TrojanStatistics.LowAnomalyIndex(Masks(2)), TrojanStatistics.LowAnomalyIndex(Masks(7)));
        // Against the reference, class 2 at 6 is normal, class 7 at 6 is far out.
        var clean = reference.Consensus(new Dictionary<string, IReadOnlyList<double>> { [Nc[0]] = Masks(2) }, Nc);
        var trojan = reference.Consensus(new Dictionary<string, IReadOnlyList<double>> { [Nc[0]] = Masks(7) }, Nc);
        Assert.True(clean.Score <= threshold, $"clean profile scored {clean.Score} > {threshold}");
        Assert.True(trojan.Score > threshold, $"class-7 profile scored {trojan.Score} ≤ {threshold}");
        Assert.Equal(7, trojan.Class);
    }

    [Fact]
    public void Consensus_calibration_is_leave_one_out_and_a_pure_rescaling_of_a_model_changes_nothing()
    {
        var reference = EasyClassTwo();
        var cal = reference.CleanConsensus(Nc);
        Assert.Equal(20, cal.Models);
        // Each reference model scored against the other 19: in-sample scoring would shrink every clean score.
        var inSample = Enumerable.Range(0, 20).Select(i => reference.Consensus(
            new Dictionary<string, IReadOnlyList<double>> { [Nc[0]] = reference.PerClass[Nc[0]][i] }, Nc).Score).Max();
        Assert.True(cal.CleanScores.Max() > inSample, $"leave-one-out max {cal.CleanScores.Max()} vs in-sample {inSample}");
        // Another architecture may scale every mask by a constant: the model's own median is removed first.
        var a = reference.Consensus(new Dictionary<string, IReadOnlyList<double>> { [Nc[0]] = Masks(7) }, Nc);
        var b = reference.Consensus(new Dictionary<string, IReadOnlyList<double>> { [Nc[0]] = Masks(7).Select(v => 1.7 * v).ToArray() }, Nc);
        Assert.Equal(a.Score, b.Score, 9);
    }

    /// <summary>
    /// Two architecture families of 30 clean models each, with different easy and hard classes: family A finds 2 and 5
    /// easy and 8 hard, family B finds 0 and 9 easy and 1 hard (the MLP/CNN picture on digits, simplified).
    /// </summary>
    private static ClassReference TwoFamilies()
    {
        var rng = new Random(11);
        double[] A = [9, 9, 6, 9, 9, 6, 9, 9, 12, 9], B = [7, 12, 9, 9, 9, 9, 9, 9, 9, 7];
        var models = Enumerable.Range(0, 60).Select(i => (i < 30 ? A : B).Select(v => v * (1 + 0.04 * (rng.NextDouble() - 0.5))).ToArray()).ToArray();
        return new ClassReference
        {
            DatasetSha256 = "abc", Classes = 10, InputShape = [1, 8, 8], Models = models.Select((_, i) => (i < 30 ? "a" : "b") + i).ToList(),
            PerClass = new Dictionary<string, double[][]> { [TrojanScanCheck.NeuralCleanse] = models },
        };
    }

    [Fact]
    public void A_trigger_on_a_class_another_family_finds_easy_is_flagged_against_the_models_of_its_own_family()
    {
        var reference = TwoFamilies();
        var threshold = reference.CleanConsensus(Nc).ThresholdFor(0.05);
        // A family-B model whose class 2 is as small as family A's: a trigger on class 2. Pooled over both families, its
        // class 2 looks like any family-A model's (the pooled threshold is set by exactly those), so it would pass.
        double[] trojan = [7, 12, 6, 9, 9, 9, 9, 9, 9, 7];
        var c = reference.Consensus(new Dictionary<string, IReadOnlyList<double>> { [Nc[0]] = trojan }, Nc);
        Assert.True(c.Score > threshold, $"family-B model with a small class 2 scored {c.Score} <= {threshold}");
        Assert.Equal(2, c.Class);
        // Compared with family B only: the altered class is left out of the likeness, so it cannot pull in family A.
        Assert.Equal(ClassReference.Neighbours(60), c.References.Length);
        Assert.All(c.References, i => Assert.StartsWith("b", reference.Models[i], StringComparison.Ordinal));
        // And a clean model of either family stays below the threshold.
        foreach (var clean in new[] { new double[] { 9, 9, 6, 9, 9, 6, 9, 9, 12, 9 }, [7, 12, 9, 9, 9, 9, 9, 9, 9, 7] })
            Assert.True(reference.Consensus(new Dictionary<string, IReadOnlyList<double>> { [Nc[0]] = clean }, Nc).Score <= threshold);
    }

    [Fact]
    public void A_two_target_trojan_cannot_choose_the_references_it_is_judged_against()
    {
        // Family B with both targets 2 and 5 made as easy as family A finds them: over all ten classes this profile is
        // nearer family A (2 classes differ from B by ln 1.5, 4 from A by ln 9/7 or ln 4/3), so judged against A its
        // targets would look normal. The altered classes are left out of the likeness, so B is chosen and both stand out.
        var reference = TwoFamilies();
        var threshold = reference.CleanConsensus(Nc).ThresholdFor(0.05);
        double[] trojan = [7, 12, 6, 9, 9, 6, 9, 9, 9, 7];
        var c = reference.Consensus(new Dictionary<string, IReadOnlyList<double>> { [Nc[0]] = trojan }, Nc);
        Assert.All(c.References, i => Assert.StartsWith("b", reference.Models[i], StringComparison.Ordinal));
        Assert.True(c.Score > threshold, $"two-target model scored {c.Score} <= {threshold}");
        Assert.Contains(c.Class, new[] { 2, 5 });
        Assert.True(c.PerClass[2] > threshold && c.PerClass[5] > threshold, $"class 2 {c.PerClass[2]}, class 5 {c.PerClass[5]}");
    }

    [Fact]
    public void Reference_applies_only_to_the_task_it_was_made_on()
    {
        var reference = EasyClassTwo();
        Assert.Null(reference.Mismatch("abc", 10, [1, 8, 8], Nc));
        Assert.Contains("another task", reference.Mismatch("def", 10, [1, 8, 8], Nc));
        Assert.Contains("this model 12", reference.Mismatch("abc", 12, [1, 8, 8], Nc));
        Assert.Contains("[1,8,8]", reference.Mismatch("abc", 10, [3, 8, 8], Nc));
        Assert.Contains("no reference values for mm-bd", reference.Mismatch("abc", 10, [1, 8, 8], [TrojanScanCheck.NeuralCleanse, TrojanScanCheck.MaxMargin]));
    }

    [Fact]
    public void A_model_with_more_classes_gets_scaled_defaults_and_falls_back_to_the_within_model_detectors()
    {
        // 20 classes on the digits inputs: the digits reference (10 classes) does not apply, and the defaults grow.
        var b = new OnnxBuilder([1, 1, 8, 8], input: "input");
        var logits = b.Dense(b.Node("Flatten", ["input"]), 64, 20, new Random(3));
        var model = b.Build(logits, [1, 20]);
        var (r, _) = MechanisticHarness.Run(model, MechanisticHarness.DigitsPolicy("""
                - id: trojan
                  type: trojan-scan
                  dataset: test
                  detectors: [mm-bd]
                  mmBd: { starts: 1, steps: 2 }
            """));
        Assert.Equal(20, r.Metrics["classes"]);
        Assert.Equal(TrojanScanCheck.SamplesPerClass * 20, r.Metrics["samples"]);
        Assert.Equal(TrojanScanCheck.WallTimePerClass.TotalSeconds * 20, (double)r.Details["wallTimeBudgetSeconds"]!);
        Assert.False((bool)r.Details["classReference"]!["applies"]!);
        Assert.Contains("this model 20", (string)r.Details["classReference"]!["why"]!);
        Assert.Equal([TrojanScanCheck.MaxMargin], r.Details["detectors"]!.AsArray().Select(d => (string)d!["name"]!));
        // Without the reference the one detector gets the whole false-positive rate.
        Assert.StartsWith("calibrated at FPR 10 %", (string)r.Details["detectors"]![0]!["thresholdSource"]!);
    }

    [Fact]
    public void Samples_and_wall_time_set_by_the_policy_do_not_scale()
    {
        var b = new OnnxBuilder([1, 1, 8, 8], input: "input");
        var model = b.Build(b.Dense(b.Node("Flatten", ["input"]), 64, 20, new Random(3)), [1, 20]);
        var (r, _) = MechanisticHarness.Run(model, MechanisticHarness.DigitsPolicy("""
                - id: trojan
                  type: trojan-scan
                  dataset: test
                  samples: 32
                  detectors: [mm-bd]
                  mmBd: { starts: 1, steps: 2 }
                  budget: { wallTime: 2m }
            """));
        Assert.Equal(32, r.Metrics["samples"]);
        Assert.Equal(120, (double)r.Details["wallTimeBudgetSeconds"]!);
    }

    [Fact]
    public void Embedded_calibration_holds_reference_models_of_the_digits_task()
    {
        var reference = TrojanCalibration.Embedded.Reference;
        Assert.NotNull(reference);
        var digits = Gate.Core.Tensors.Npy.Read(TestPaths.FixtureData("digits_test_x.npy"));
        Assert.Equal(ClassReference.Fingerprint(digits), reference.DatasetSha256);
        Assert.True(reference.Models.Count >= 60, $"{reference.Models.Count} reference models");
        foreach (var d in TrojanScanCheck.DetectorNames) Assert.All(reference.PerClass[d], m => Assert.Equal(10, m.Length));
    }
}
