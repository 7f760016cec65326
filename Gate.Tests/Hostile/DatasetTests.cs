using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Evidence;
using Gate.Core.Governance;
using Gate.Core.Policy;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Hostile;

/// <summary>
/// Datasets: what is evaluated, and that it is recorded. Every bad .npy and policy is built on the fly from the
/// digits test set (360 samples of [1,8,8] in [0,1], labels 0..9) and the digits CNN (10 classes). Bad data must be
/// exit 3 at plan time, naming the file and the first offending index, never a runtime message from the sandbox.
/// </summary>
public class DatasetTests
{
    private static string Cnn => Path.Combine(TestPaths.RepoRoot, "examples", "digits", "digits-cnn.onnx");
    private static string ReleasePolicy => Path.Combine(TestPaths.RepoRoot, "policies", "digits-release.yaml");
    private static Tensor DigitsX => Npy.Read(TestPaths.FixtureData("digits_test_x.npy"));
    private static Tensor DigitsY => Npy.Read(TestPaths.FixtureData("digits_test_y.npy"));

    /// <summary>A policy over x.npy/y.npy in <paramref name="dir"/>: accuracy and (optionally) a check with samples.</summary>
    private static string WritePolicy(string dir, string datasetExtra = "", string checks = "")
    {
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: data-test }
            spec:
              model:
                format: onnx
                inputs:
                  input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }
              runtime: builtin
              sandbox: { isolation: process }
              datasets:
                test:
                  inputs: x.npy
                  labels: y.npy
            {{datasetExtra}}
              checks:
                - id: accuracy
                  type: accuracy
                  dataset: test
                  require: { min: 0.5 }
            {{checks}}
            """);
        return path;
    }

    private static string Dir(Tensor x, Tensor y)
    {
        var dir = TestPaths.TempDir("gate-data");
        Npy.Write(Path.Combine(dir, "x.npy"), x);
        Npy.Write(Path.Combine(dir, "y.npy"), y);
        return dir;
    }

    private static ProcessResult Check(string model, string policy, string outDir, params string[] extra) =>
        GateCli.Run(["check", "--model", model, "--policy", policy, "--out", outDir, .. extra], TimeSpan.FromSeconds(90));

    private static void AssertBadInput(ProcessResult r, string file, string fragment)
    {
        Assert.True(r.ExitCode == 3, $"exit {r.ExitCode}\n{r.All}");
        Assert.Contains($"{file}: {fragment}", r.Stderr);
        Assert.DoesNotContain("gate-sandbox-", r.All); // never a runtime message naming a sandbox path
        Assert.DoesNotContain("internal error", r.All);
    }

    private static float[] Floats(Tensor t) => t.ToFloatArray();

    /// <summary>gate check in-process without a sandbox: plan-time outcomes (records, not-run checks) are what these tests look at.</summary>
    private static Task<Gate.Core.Decision.DecisionRecord> Pipeline(GateCheckRequest req) =>
        new GateCheckPipeline(null).RunAsync(req, null, TestContext.Current.CancellationToken);

    // ---------------------------------------------------------------- item 3: sanity at plan time

    public static TheoryData<string, string, string> BadData => new()
    {
        // case, file that is named, message fragment after "FILE: "
        { "nan", "x.npy", "sample 12, element [0,3,4] (flat index 796): NaN" },
        { "inf", "x.npy", "sample 0, element [0,0,1] (flat index 1): -Inf" },
        { "out-of-range", "x.npy", "sample 359, element [0,7,7] (flat index 23039): 1.5 is outside the range [0, 1] declared for input 'input'" },
        { "integer-inputs", "x.npy", "int64 array where input 'input' is declared float" },
        { "label-too-large", "y.npy", "sample 5: label 10 is outside [0, 10): model output" },
        { "negative-label", "y.npy", "sample 7: label -1 is negative" },
        { "fractional-label", "y.npy", "sample 3: label 2.5 is not a whole number" },
        { "label-count", "y.npy", "359 labels for 360 input samples" },
        { "one-hot-labels", "y.npy", "shape [360,10]; labels must be a vector of class indices" },
        { "zero-samples", "x.npy", "0 samples (shape [0,1,8,8])" },
        { "wrong-shape", "x.npy", "shape [360,1,8,9] does not match [-1,1,8,8] declared for input 'input' in spec.model.inputs (axis 3 is 9, expected 8)" },
        { "no-sample-axis", "x.npy", "a scalar; dataset inputs need a sample axis" },
    };

    [Theory]
    [MemberData(nameof(BadData))]
    public void Bad_data_is_refused_at_plan_time_naming_file_and_first_index(string name, string file, string fragment)
    {
        var x = Floats(DigitsX);
        var y = DigitsY.ToLongArray();
        Tensor xs = Tensor.FromFloats([360, 1, 8, 8], x), ys = Tensor.FromLongs([360], y);
        switch (name)
        {
            case "nan": x[12 * 64 + 3 * 8 + 4] = float.NaN; x[13 * 64] = float.NaN; break;
            case "inf": x[1] = float.NegativeInfinity; break;
            case "out-of-range": x[^1] = 1.5f; break;
            case "integer-inputs": xs = Tensor.FromLongs([360, 1, 8, 8], x.Select(v => (long)(v * 16)).ToArray()); break;
            case "label-too-large": y[5] = 10; break;
            case "negative-label": y[7] = -1; break;
            case "fractional-label": ys = Tensor.FromDoubles([360], y.Select((v, i) => i == 3 ? 2.5 : v).ToArray()); break;
            case "label-count": ys = Tensor.FromLongs([359], y[..359]); break;
            case "one-hot-labels": ys = Tensor.FromLongs([360, 10], y.SelectMany(v => Enumerable.Range(0, 10).Select(k => k == v ? 1L : 0L)).ToArray()); break;
            case "zero-samples": xs = Tensor.FromFloats([0, 1, 8, 8], []); ys = Tensor.FromLongs([0], []); break;
            case "wrong-shape": xs = Tensor.FromFloats([360, 1, 8, 9], new float[360 * 72]); break;
            case "no-sample-axis": xs = Tensor.Scalar(0.5f); break;
        }
        var dir = Dir(xs, ys);
        var r = Check(Cnn, WritePolicy(dir), Path.Combine(dir, "out"));
        AssertBadInput(r, Path.Combine(dir, file), fragment);
        Assert.False(File.Exists(Path.Combine(dir, "out", "decision.json")));
    }

    [Fact]
    public void A_model_whose_output_is_narrower_than_the_labels_is_refused()
    {
        // input [N,1,8,8] → Flatten → Gemm to 5 classes, judged on labels 0..9.
        var dir = Dir(DigitsX, DigitsY);
        var model = new OnnxBuilder().Input("input", -1, 1, 8, 8).Output("logits", -1, 5)
            .Initializer("w", [64, 5], new float[320]).Initializer("b", [5], new float[5])
            .Node("Flatten", ["input"], ["flat"]).Node("Gemm", ["flat", "w", "b"], ["logits"])
            .Save(Path.Combine(dir, "five.onnx"));
        var r = Check(model, WritePolicy(dir), Path.Combine(dir, "out"));
        AssertBadInput(r, Path.Combine(dir, "y.npy"), "sample 0: label 5 is outside [0, 5): model output 'logits' is [N,5], 5 classes wide");
    }

    [Fact]
    public void Dev_zero_as_a_dataset_is_refused_without_reading_it()
    {
        var dir = Dir(DigitsX, DigitsY);
        var sw = Stopwatch.StartNew();
        var r = Check(Cnn, WritePolicy(dir), Path.Combine(dir, "out"), "--data", "test=/dev/zero");
        AssertBadInput(r, "/dev/zero", ".npy file is a character device, not a regular file");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"took {sw.Elapsed}");
    }

    [Fact]
    public void A_fifo_as_a_dataset_is_refused_without_hanging()
    {
        var dir = Dir(DigitsX, DigitsY);
        var fifo = Path.Combine(dir, "fifo.npy");
        using (var mk = Process.Start("mkfifo", [fifo])) mk.WaitForExit();
        Assert.True(File.Exists(fifo));
        // Nobody ever writes to the FIFO: opening it for reading would block forever (GateCli times out at 90 s).
        var r = Check(Cnn, WritePolicy(dir), Path.Combine(dir, "out"), "--data", $"test.labels={fifo}");
        AssertBadInput(r, fifo, ".npy file is a named pipe (FIFO)");
    }

    [Fact]
    public void An_unknown_data_name_is_refused_listing_the_known_names()
    {
        var dir = Dir(DigitsX, DigitsY);
        var r = Check(Cnn, WritePolicy(dir), Path.Combine(dir, "out"), "--data", $"tset={Path.Combine(dir, "x.npy")}");
        Assert.True(r.ExitCode == 3, r.All);
        Assert.Contains($"--data tset={Path.Combine(dir, "x.npy")}: the policy defines no dataset 'tset' (datasets: test)", r.Stderr);
    }

    /// <summary>
    /// Core carries the override an error is about as a value (no flag in its wording); the CLI names it as the user
    /// typed it, relative path and all, so they can find the argument on their command line.
    /// </summary>
    [Fact]
    public void Override_errors_name_the_override_in_Core_and_the_flag_as_typed_in_the_CLI()
    {
        var dir = Swap30(Dir(DigitsX, DigitsY));
        var e = Assert.Throws<PolicyException>(() => PolicyLoader.Load(WritePolicy(dir), new Dictionary<string, string> { ["tset.labels"] = "y.npy" }));
        var error = Assert.Single(e.Errors);
        Assert.Equal(new DataOverride("tset", true, "y.npy"), error.Override);
        Assert.Contains("data override tset.labels=y.npy: the policy defines no dataset 'tset' (datasets: test)", e.Message);
        Assert.DoesNotContain("--", e.Message);

        // Relative paths, from the folder they are relative to: the refusal of a pinned dataset quotes them unresolved.
        var r = GateProcess.Run(["check", "--model", Cnn, "--policy", ReleasePolicy, "--out", Path.Combine(dir, "out"),
            "--data", "test=x30.npy", "--data", "test.labels=./y30.npy"], null, TimeSpan.FromSeconds(90), workingDirectory: dir);
        Assert.True(r.ExitCode == 3, r.All);
        Assert.Contains("spec.datasets.test.inputs: --data test=x30.npy: dataset 'test' is pinned by sha256 and the policy does not allow overrides", r.Stderr);
        Assert.Contains("spec.datasets.test.labels: --data test.labels=./y30.npy: dataset 'test' is pinned by sha256", r.Stderr);
        Assert.Contains(Sha256Sum(Path.Combine(dir, "x30.npy")), r.Stderr);
    }

    // ---------------------------------------------------------------- item 2: pins, overrides, the record

    [Fact]
    public void A_pinned_dataset_whose_file_changed_is_refused_with_both_digests()
    {
        var dir = Dir(DigitsX, DigitsY);
        string pin = new('a', 64), labelsPin = Sha256Sum(Path.Combine(dir, "y.npy"));
        var policy = WritePolicy(dir, $"      sha256: {{ inputs: {pin}, labels: {labelsPin} }}");
        var r = Check(Cnn, policy, Path.Combine(dir, "out"));
        AssertBadInput(r, Path.Combine(dir, "x.npy"), $"sha256 {Sha256Sum(Path.Combine(dir, "x.npy"))} does not match the digest the policy pins (sha256.inputs: {pin})");
    }

    [Fact]
    public void A_policy_that_pins_inputs_but_not_labels_is_refused()
    {
        var e = Assert.Throws<PolicyException>(() => PolicyLoader.Load(WritePolicy(Dir(DigitsX, DigitsY), $"      sha256: {{ inputs: {new string('a', 64)} }}")));
        Assert.Contains("spec.datasets.test.sha256: the dataset has labels: pin them too", e.Message);
    }

    /// <summary>The swap attack of issue 15: an approved policy asking for 200 samples, --data with 30 hand-picked ones.</summary>
    private static string Swap30(string dir)
    {
        var x = Floats(DigitsX); var y = DigitsY.ToLongArray();
        Npy.Write(Path.Combine(dir, "x30.npy"), Tensor.FromFloats([30, 1, 8, 8], x[..(30 * 64)]));
        Npy.Write(Path.Combine(dir, "y30.npy"), Tensor.FromLongs([30], y[..30]));
        return dir;
    }

    [Fact]
    public void Swap_attack_on_the_pinned_release_policy_is_refused()
    {
        var dir = Swap30(TestPaths.TempDir("gate-swap"));
        var r = Check(Cnn, ReleasePolicy, Path.Combine(dir, "out"),
            "--data", $"test={Path.Combine(dir, "x30.npy")}", "--data", $"test.labels={Path.Combine(dir, "y30.npy")}");
        Assert.True(r.ExitCode == 3, r.All);
        Assert.Contains($"--data test={Path.Combine(dir, "x30.npy")}: dataset 'test' is pinned by sha256 and the policy does not allow overrides", r.Stderr);
        Assert.Contains(Sha256Sum(Path.Combine(dir, "x30.npy")), r.Stderr);
        Assert.False(File.Exists(Path.Combine(dir, "out", "decision.json")));
    }

    [Fact]
    public async Task Swap_attack_on_an_unpinned_policy_is_inconclusive_and_recorded()
    {
        // The release policy as it was before pins existed: same checks (robustness asks for 200 samples), no sha256.
        var dir = Swap30(TestPaths.TempDir("gate-swap"));
        var text = File.ReadAllText(ReleasePolicy).Replace("../examples/", Path.Combine(TestPaths.RepoRoot, "examples") + "/");
        text = string.Join('\n', text.Split('\n').Where(l => !l.Contains("sha256") && !l.TrimStart().StartsWith("inputs: 0") && !l.TrimStart().StartsWith("labels: 0")));
        var policy = Path.Combine(dir, "unpinned.yaml");
        File.WriteAllText(policy, text);
        Assert.False(PolicyLoader.Load(policy).Spec.Datasets["test"].Pinned);

        var overrides = new Dictionary<string, string> { ["test"] = Path.Combine(dir, "x30.npy"), ["test.labels"] = Path.Combine(dir, "y30.npy") };
        var outDir = Path.Combine(dir, "out");
        var record = await Pipeline(new GateCheckRequest(Cnn, policy, outDir, overrides));
        GateCheckPipeline.WriteDecision(record, outDir);
        Gate.Core.Report.ReportWriter.Write(record, outDir);

        var doc = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!;
        var robustness = doc["checks"]!.AsArray().Single(c => c!["id"]!.GetValue<string>() == "robustness")!;
        Assert.Equal("inconclusive", robustness["verdict"]!.GetValue<string>().ToLowerInvariant());
        Assert.Contains("the policy asks for 200 samples", robustness["reasons"]![0]!.GetValue<string>());
        Assert.Contains("dataset 'test' has only 30", robustness["reasons"]![0]!.GetValue<string>());
        Assert.NotEqual("approve", doc["decision"]!.GetValue<string>());

        var ds = doc["datasets"]!.AsArray().Single()!;
        Assert.Equal("test", ds["name"]!.GetValue<string>());
        Assert.Equal(30, ds["samples"]!.GetValue<int>());
        Assert.True(ds["overridden"]!.GetValue<bool>());
        Assert.Equal(Path.Combine(dir, "x30.npy"), ds["inputs"]!["path"]!.GetValue<string>());
        Assert.True(ds["inputs"]!["overridden"]!.GetValue<bool>());
        Assert.Equal([30, 1, 8, 8], ds["inputs"]!["shape"]!.AsArray().Select(v => v!.GetValue<int>()));
        Assert.Equal([30], ds["labels"]!["shape"]!.AsArray().Select(v => v!.GetValue<int>()));
        // Flagged in the report and the CI summary too.
        Assert.Contains("data-overridden-dataset=\"test\"", File.ReadAllText(Path.Combine(outDir, "report.html")));
        Assert.Contains("Dataset 'test' was replaced by a data override at check time", File.ReadAllText(Path.Combine(outDir, "summary.md")));
    }

    [Fact]
    public async Task An_allowed_override_of_a_pinned_dataset_runs_and_is_flagged()
    {
        var dir = Swap30(Dir(DigitsX, DigitsY));
        var policy = WritePolicy(dir, $"      sha256: {{ inputs: {Sha256Sum(Path.Combine(dir, "x.npy"))}, labels: {Sha256Sum(Path.Combine(dir, "y.npy"))} }}\n      allowOverride: true");
        var overrides = new Dictionary<string, string> { ["test"] = Path.Combine(dir, "x30.npy"), ["test.labels"] = Path.Combine(dir, "y30.npy") };
        var record = await Pipeline(new GateCheckRequest(Cnn, policy, Path.Combine(dir, "out"), overrides));
        var ds = Assert.Single(record.Datasets);
        Assert.True(ds.Pinned);
        Assert.True(ds.Inputs.Overridden);
        Assert.True(ds.Labels!.Overridden);
        Assert.Equal(30, ds.Samples);
        Assert.Contains($"Dataset 'test' was replaced by a data override at check time: inputs {Path.Combine(dir, "x30.npy")}", Gate.Core.Report.ReportWriter.RenderMarkdown(record));

        // The same override without allowOverride is refused: the pin stands.
        var strict = WritePolicy(dir, $"      sha256: {{ inputs: {Sha256Sum(Path.Combine(dir, "x.npy"))}, labels: {Sha256Sum(Path.Combine(dir, "y.npy"))} }}");
        var e = await Assert.ThrowsAsync<PolicyException>(() => Pipeline(new GateCheckRequest(Cnn, strict, Path.Combine(dir, "out"), overrides)));
        Assert.Contains("dataset 'test' is pinned by sha256 and the policy does not allow overrides", e.Message);
    }

    [Fact]
    public async Task Recorded_dataset_digests_equal_sha256sum_of_the_files()
    {
        var dir = Dir(DigitsX, DigitsY);
        var record = await Pipeline(new GateCheckRequest(Cnn, WritePolicy(dir), Path.Combine(dir, "out")));
        var doc = JsonNode.Parse(record.ToJson())!;
        var ds = doc["datasets"]!.AsArray().Single()!;
        foreach (var (key, file) in new[] { ("inputs", "x.npy"), ("labels", "y.npy") })
        {
            Assert.Equal(Path.Combine(dir, file), ds[key]!["path"]!.GetValue<string>());
            Assert.Equal(Sha256Sum(Path.Combine(dir, file)), ds[key]!["sha256"]!.GetValue<string>());
            Assert.Equal(new FileInfo(Path.Combine(dir, file)).Length, ds[key]!["bytes"]!.GetValue<long>());
            Assert.False(ds[key]!["overridden"]!.GetValue<bool>());
        }
        Assert.Equal(360, ds["samples"]!.GetValue<int>());
        Assert.Equal("float32", ds["inputs"]!["dtype"]!.GetValue<string>());
        Assert.Equal(["accuracy"], ds["usedBy"]!.AsArray().Select(v => v!.GetValue<string>()));
        Assert.Empty(record.Incomplete());
    }

    [Fact]
    public async Task Every_check_that_asks_for_more_samples_than_the_data_has_is_inconclusive()
    {
        var dir = Swap30(TestPaths.TempDir("gate-few"));
        File.Move(Path.Combine(dir, "x30.npy"), Path.Combine(dir, "x.npy"));
        File.Move(Path.Combine(dir, "y30.npy"), Path.Combine(dir, "y.npy"));
        var policy = WritePolicy(dir, checks: """
                - id: few
                  type: accuracy
                  dataset: test
                  samples: 31
                  require: { min: 0.5 }
                - id: chosen
                  type: adversarial
                  dataset: test
                  indices: [0, 29, 30]
                  threat: { norm: linf, epsilon: 0.05 }
                  search: [ { method: pgd, steps: 5 } ]
                  require: { robustAccuracy: { min: 0.5 } }
            """);
        var record = await Pipeline(new GateCheckRequest(Cnn, policy, Path.Combine(dir, "out")));
        var few = record.Checks.Single(c => c.Id == "few");
        Assert.Equal(Verdict.Inconclusive, few.Verdict);
        Assert.Contains("the policy asks for 31 samples", few.Reasons[0]);
        var chosen = record.Checks.Single(c => c.Id == "chosen");
        Assert.Equal(Verdict.Inconclusive, chosen.Verdict);
        Assert.Contains("indices: sample 30", chosen.Reasons[0]);
    }

    // ---------------------------------------------------------------- bound: lower

    private const string BoundPolicy = """
        apiVersion: gate/v1
        kind: DeploymentPolicy
        metadata: { name: bounds }
        spec:
          model: { format: onnx, inputs: { input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] } } }
          datasets: { test: { inputs: x.npy, labels: y.npy } }
          checks:
            - id: robustness
              type: adversarial
              dataset: test
              threat: { norm: linf, epsilon: 0.05 }
              search: [ { method: pgd, steps: 10 } ]
              require: { robustAccuracy: { min: 0.5 } }
        """;

    private static DeploymentPolicy ParsePolicy(string yaml) => PolicyLoader.Parse(Encoding.UTF8.GetBytes(yaml), "p.yaml");

    [Fact]
    public void A_requirement_can_judge_the_lower_confidence_bound()
    {
        var point = ParsePolicy(BoundPolicy).Spec.Checks[0];
        var lower = ParsePolicy(BoundPolicy.Replace("{ min: 0.5 }", "{ min: 0.5, bound: lower }")).Spec.Checks[0];
        Assert.Equal(Estimate.Point, point.Require["robustAccuracy"].Bound);
        Assert.Equal(Estimate.Lower, lower.Require["robustAccuracy"].Bound);

        // 18 of 30 robust: point 0.6 meets 0.5, the 95% Wilson lower bound (≈0.42) does not.
        var (lo, _) = Statistics.WilsonInterval(18, 30);
        CheckResult Judge(CheckSpec spec)
        {
            var r = new CheckResult { Id = spec.Id, Type = spec.Type };
            r.Metrics["robustAccuracy"] = 0.6;
            r.Metrics["robustAccuracyLower"] = lo;
            Requirements.Apply(r, spec.Require);
            return r;
        }
        Assert.Equal(Verdict.Pass, Judge(point).Verdict);
        var judged = Judge(lower);
        Assert.Equal(Verdict.Fail, judged.Verdict);
        Assert.Equal(Estimate.Lower, judged.Requirements[0].Bound);
        Assert.Contains("robustAccuracy (lower confidence bound) = 0.42", judged.Requirements[0].Text);
    }

    [Fact]
    public void Bound_is_refused_on_a_metric_without_a_confidence_interval()
    {
        var e = Assert.Throws<PolicyException>(() => ParsePolicy(BoundPolicy.Replace("robustAccuracy: { min: 0.5 }", "counterexamples: { max: 0, bound: lower }")));
        Assert.Contains("bound", e.Message);
    }

    [Fact]
    public void Review_states_which_value_is_judged()
    {
        string Review(string yaml) => PolicyReview.Render(ParsePolicy(yaml), "md", _ => null);
        Assert.Contains("must be at least 0.5, judged on the point estimate", Review(BoundPolicy));
        Assert.Contains("must be at least 0.5, judged on the lower end of its 95% confidence interval", Review(BoundPolicy.Replace("{ min: 0.5 }", "{ min: 0.5, bound: lower }")));
        Assert.Contains("Dataset 'test' is not pinned by sha256, so a data override (other files named when gate check runs) can replace it", Review(BoundPolicy));
    }

    [Theory]
    [InlineData("{ min: 0.5 }", "{ min: 0.5, bound: lower }", ChangeKind.Strengthening)]
    [InlineData("{ min: 0.5, bound: lower }", "{ min: 0.5 }", ChangeKind.Weakening)]
    [InlineData("{ min: 0.5, bound: lower }", "{ min: 0.5, bound: upper }", ChangeKind.Weakening)]
    public void Diff_classifies_point_to_lower_as_strengthening(string from, string to, ChangeKind expected)
    {
        var changes = PolicyDiff.Compare(ParsePolicy(BoundPolicy.Replace("{ min: 0.5 }", from)), ParsePolicy(BoundPolicy.Replace("{ min: 0.5 }", to)));
        var c = Assert.Single(changes);
        Assert.Equal(expected, c.Kind);
        Assert.Equal("spec.checks[robustness].require.robustAccuracy.bound", c.Path);
    }

    [Fact]
    public void Diff_flags_a_removed_dataset_pin_as_weakening()
    {
        var pinned = BoundPolicy.Replace("test: { inputs: x.npy, labels: y.npy }",
            $"test: {{ inputs: x.npy, labels: y.npy, sha256: {{ inputs: {new string('a', 64)}, labels: {new string('b', 64)} }} }}");
        var removed = Assert.Single(PolicyDiff.Compare(ParsePolicy(pinned), ParsePolicy(BoundPolicy)));
        Assert.Equal(ChangeKind.Weakening, removed.Kind);
        Assert.Equal("spec.datasets.test.sha256", removed.Path);
        Assert.Equal(ChangeKind.Strengthening, Assert.Single(PolicyDiff.Compare(ParsePolicy(BoundPolicy), ParsePolicy(pinned))).Kind);
    }

    [Fact]
    public void Lint_warns_on_an_unpinned_release_dataset_and_an_optimistic_bound()
    {
        var release = BoundPolicy.Replace("metadata: { name: bounds }", "metadata: { name: bounds, release: true }")
            .Replace("{ min: 0.5 }", "{ min: 0.5, bound: upper }");
        var warnings = PolicyLint.Lint(ParsePolicy(release)).Warnings.Select(w => w.Message).ToList();
        Assert.Contains(warnings, w => w.Contains("dataset 'test' is not pinned (sha256)"));
        Assert.Contains(warnings, w => w.Contains("bound: upper judges the optimistic end"));
    }

    private static string Sha256Sum(string path)
    {
        using var p = Process.Start(new ProcessStartInfo("sha256sum", [path]) { RedirectStandardOutput = true })!;
        var line = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return line.Split(' ')[0];
    }
}
