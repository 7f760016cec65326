using System.Text.Json.Nodes;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Checks.MultiInput;

/// <summary>
/// A BERT-style model with three int64 inputs (input_ids, token_type_ids, attention_mask) checked end to end through
/// `gate check` on an .npz dataset holding one array per input: accuracy and a linear probe are decided (the mask
/// must reach the model: ignoring it flips every label), and an adversarial check on token ids is refused at plan
/// time with the reason.
/// </summary>
public class MultiInputTests
{
    private const int Positions = 4;

    /// <summary>
    /// Embeddings token 0 → (0,0), 1 → (1,0), 2 → (0,1); token types add nothing; masked positions are zeroed; the mean
    /// over positions goes through an identity layer and a ReLU: the class is whichever of tokens 1 and 2 is more
    /// frequent among the unmasked positions.
    /// </summary>
    private static string Model(string dir)
    {
        var b = new OnnxBuilder(opset: 13)
            .Input("input_ids", DType.Int64, -1, Positions).Input("token_type_ids", DType.Int64, -1, Positions).Input("attention_mask", DType.Int64, -1, Positions);
        var words = b.Node("Gather", [b.Init([0, 0, 1, 0, 0, 1], 3, 2), "input_ids"], ("axis", 0));                   // [N,4,2]
        var types = b.Node("Gather", [b.Init([0, 0, 0, 0], 2, 2), "token_type_ids"], ("axis", 0));
        var mask = b.Node("Unsqueeze", [b.Node("Cast", ["attention_mask"], ("to", 1)), b.InitLong([2], 1)]);          // [N,4,1]
        var pooled = b.Node("ReduceMean", [b.Node("Mul", [b.Node("Add", [words, types]), mask])], ("axes", new long[] { 1 }), ("keepdims", 0));
        var hidden = b.Node("Relu", [b.Node("Gemm", [pooled, b.Init([1, 0, 0, 1], 2, 2)])]);
        b.Node("Identity", [hidden], ["logits"]);
        b.Output("logits", -1, 2);
        return b.Save(Path.Combine(dir, "bert-style.onnx"));
    }

    /// <summary>Samples whose masked positions hold the other token: the label holds only if the mask is applied.</summary>
    private static string Dataset(string dir, int n = 40)
    {
        var rng = new Random(11);
        var ids = new long[n * Positions];
        var types = new long[n * Positions];
        var mask = new long[n * Positions];
        var labels = new long[n];
        for (int s = 0; s < n; s++)
        {
            long win = rng.Next(2) + 1, lose = 3 - win;
            // Two visible positions: the winner and a padding token 0; two masked positions full of the loser.
            long[] row = [win, 0, lose, lose];
            for (int p = 0; p < Positions; p++)
            {
                ids[s * Positions + p] = row[p];
                types[s * Positions + p] = p < 2 ? 0 : 1;
                mask[s * Positions + p] = p < 2 ? 1 : 0;
            }
            labels[s] = win - 1;
        }
        Npy.WriteNpz(Path.Combine(dir, "tokens.npz"), new Dictionary<string, Tensor>
        {
            ["input_ids"] = Tensor.FromLongs([n, Positions], ids),
            ["token_type_ids"] = Tensor.FromLongs([n, Positions], types),
            ["attention_mask"] = Tensor.FromLongs([n, Positions], mask),
        });
        Npy.Write(Path.Combine(dir, "labels.npy"), Tensor.FromLongs([n], labels));
        return Path.Combine(dir, "tokens.npz");
    }

    private static string Policy(string dir, string checks, string dataset = "{ inputs: tokens.npz, labels: labels.npy }")
    {
        var path = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(path, $$"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: multi-input }
            spec:
              model:
                format: onnx
                inputs:
                  input_ids: { shape: [-1, {{Positions}}], range: [0, 2] }
              runtime: builtin
              sandbox: { isolation: process }
              seed: 1
              datasets:
                d: {{dataset}}
              checks:
            {{checks}}
            """);
        return path;
    }

    [Fact]
    public void Gate_check_decides_accuracy_and_a_probe_on_a_three_input_model_from_an_npz()
    {
        var dir = TestPaths.TempDir();
        Dataset(dir);
        var outDir = Path.Combine(dir, "out");
        var r = GateCli.Run("check", "--model", Model(dir), "--policy", Policy(dir, """
                - id: acc
                  type: accuracy
                  dataset: d
                  require: { accuracy: { min: 1.0 } }
                - id: probe
                  type: linear-probe
                  dataset: d
                  layers: auto
                  folds: 2
                  require: { accuracy: { min: 0.9 } }
            """), "--out", outDir);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.All}");
        var checks = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!["checks"]!.AsArray();
        var acc = checks.Single(c => c!["id"]!.GetValue<string>() == "acc")!;
        Assert.Equal(1.0, acc["metrics"]!["accuracy"]!.GetValue<double>());
        Assert.Equal(40, acc["metrics"]!["samples"]!.GetValue<double>());
        var probe = checks.Single(c => c!["id"]!.GetValue<string>() == "probe")!;
        Assert.Equal("pass", probe["verdict"]!.GetValue<string>().ToLowerInvariant());
    }

    /// <summary>The .npz's arrays as one .npy per input (ids.npy, types.npy, mask.npy) beside it.</summary>
    private static void SplitFiles(string dir)
    {
        var arrays = Npy.ReadNpz(Path.Combine(dir, "tokens.npz"));
        Npy.Write(Path.Combine(dir, "ids.npy"), arrays["input_ids"]);
        Npy.Write(Path.Combine(dir, "types.npy"), arrays["token_type_ids"]);
        Npy.Write(Path.Combine(dir, "mask.npy"), arrays["attention_mask"]);
    }

    private const string PerInput = "{ inputs: { input_ids: ids.npy, token_type_ids: types.npy, attention_mask: mask.npy }, labels: labels.npy }";

    private const string DataChecks = """
                - id: acc
                  type: accuracy
                  dataset: d
                  require: { accuracy: { min: 1.0 } }
                - id: probe
                  type: linear-probe
                  dataset: d
                  layers: auto
                  folds: 2
                  require: { accuracy: { min: 0.9 } }
                - id: rep
                  type: representation
                  dataset: d
                  layers: auto
            """;

    [Fact]
    public void One_file_per_input_feeds_accuracy_probe_and_representation_and_records_every_file_digest()
    {
        var dir = TestPaths.TempDir();
        Dataset(dir);
        SplitFiles(dir);
        var outDir = Path.Combine(dir, "out");
        var r = GateCli.Run("check", "--model", Model(dir), "--policy", Policy(dir, DataChecks, PerInput), "--out", outDir);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.All}");
        var decision = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!;
        var acc = decision["checks"]!.AsArray().Single(c => c!["id"]!.GetValue<string>() == "acc")!;
        Assert.Equal(1.0, acc["metrics"]!["accuracy"]!.GetValue<double>());
        Assert.Equal(40, acc["metrics"]!["samples"]!.GetValue<double>());
        Assert.Equal("pass", decision["checks"]!.AsArray().Single(c => c!["id"]!.GetValue<string>() == "probe")!["verdict"]!.GetValue<string>().ToLowerInvariant());
        // The signed record holds each file's own digest, by the input it feeds.
        var files = decision["datasets"]![0]!["inputs"]!["composedFrom"]!.AsArray();
        Assert.Equal(["input_ids", "token_type_ids", "attention_mask"], files.Select(f => f!["input"]!.GetValue<string>()));
        foreach (var (f, name) in files.Zip(new[] { "ids.npy", "types.npy", "mask.npy" }))
        {
            Assert.Equal(Path.Combine(dir, name), f!["path"]!.GetValue<string>());
            Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(dir, name)))), f["sha256"]!.GetValue<string>());
        }
    }

    public static TheoryData<string, Action<string>, string[]> BadPerInput => new()
    {
        { "unknown input", d => File.Copy(Path.Combine(d, "mask.npy"), Path.Combine(d, "extra.npy")),
            ["extra.npy", "input 'position_ids' names no input of the model"] },
        { "missing input", _ => { }, ["no file for model input 'attention_mask'"] },
        { "sample counts", d => Npy.Write(Path.Combine(d, "mask.npy"), Tensor.FromLongs([39, Positions], new long[39 * Positions])),
            ["mask.npy: 39 samples for input 'attention_mask'", "40 for 'input_ids'"] },
        { "dtype", d => Npy.Write(Path.Combine(d, "types.npy"), Tensor.FromFloats([40, Positions], new float[40 * Positions])),
            ["types.npy (input 'token_type_ids'): float32 array where model input 'token_type_ids' is int64"] },
        { "pin", _ => { }, ["ids.npy: sha256", "sha256.inputs.input_ids"] },
        // One of the files a FIFO nobody writes to: refused by what it is, never opened (opening would block forever).
        { "fifo", d => { File.Delete(Path.Combine(d, "mask.npy")); using var mk = System.Diagnostics.Process.Start("mkfifo", [Path.Combine(d, "mask.npy")]); mk.WaitForExit(); },
            ["mask.npy", "is a named pipe (FIFO)"] },
    };

    [Theory]
    [MemberData(nameof(BadPerInput))]
    public void A_bad_file_per_input_dataset_is_bad_input_naming_the_file_and_the_input(string what, Action<string> spoil, string[] expected)
    {
        var dir = TestPaths.TempDir();
        Dataset(dir);
        SplitFiles(dir);
        spoil(dir);
        string dataset = what switch
        {
            "unknown input" => "{ inputs: { input_ids: ids.npy, token_type_ids: types.npy, attention_mask: mask.npy, position_ids: extra.npy }, labels: labels.npy }",
            "missing input" => "{ inputs: { input_ids: ids.npy, token_type_ids: types.npy }, labels: labels.npy }",
            "pin" => "{ inputs: { input_ids: ids.npy, token_type_ids: types.npy, attention_mask: mask.npy }, labels: labels.npy, sha256: { inputs: { input_ids: "
                     + new string('a', 64) + ", token_type_ids: " + new string('a', 64) + ", attention_mask: " + new string('a', 64) + " }, labels: " + new string('a', 64) + " } }",
            _ => PerInput,
        };
        var r = GateCli.Run("check", "--model", Model(dir), "--policy", Policy(dir, DataChecks, dataset), "--out", Path.Combine(dir, "out"));
        Assert.True(r.ExitCode == 3, $"exit {r.ExitCode}\n{r.All}");
        foreach (var e in expected) Assert.True(r.All.Contains(e), $"no \"{e}\" in:\n{r.All}");
        Assert.False(File.Exists(Path.Combine(dir, "out", "decision.json")));
    }

    [Fact]
    public void Review_and_lint_read_a_file_per_input_dataset()
    {
        var dir = TestPaths.TempDir();
        Dataset(dir);
        SplitFiles(dir);
        var policy = Policy(dir, DataChecks, PerInput);
        var review = GateCli.Run("policy", "review", policy);
        Assert.True(review.ExitCode == 0, $"exit {review.ExitCode}\n{review.All}");
        Assert.Contains("one file per model input (input_ids: ids.npy, token_type_ids: types.npy, attention_mask: mask.npy)", review.All);
        var lint = GateCli.Run("policy", "lint", policy, "--model", Model(dir));
        Assert.True(lint.ExitCode is 0 or 1, $"exit {lint.ExitCode}\n{lint.All}");
        // A mapping where one digest is expected (and the reverse) is an error at its line.
        File.WriteAllText(policy, File.ReadAllText(policy).Replace("labels: labels.npy }", "labels: labels.npy, sha256: { inputs: " + new string('a', 64) + ", labels: " + new string('b', 64) + " } }"));
        var bad = GateCli.Run("policy", "lint", policy);
        Assert.True(bad.ExitCode == 3, $"exit {bad.ExitCode}\n{bad.All}");
        Assert.Contains("pin each (sha256.inputs: {INPUT: SHA256, ...})", bad.All);
    }

    [Fact]
    public void An_npz_missing_an_input_is_bad_input_naming_it()
    {
        var dir = TestPaths.TempDir();
        Dataset(dir);
        var arrays = Npy.ReadNpz(Path.Combine(dir, "tokens.npz"));
        arrays.Remove("attention_mask");
        Npy.WriteNpz(Path.Combine(dir, "tokens.npz"), arrays);
        var r = GateCli.Run("check", "--model", Model(dir), "--policy", Policy(dir, """
                - id: acc
                  type: accuracy
                  dataset: d
                  require: { accuracy: { min: 1.0 } }
            """), "--out", Path.Combine(dir, "out"));
        Assert.True(r.ExitCode == 3, $"exit {r.ExitCode}\n{r.All}");
        Assert.Contains("no array for model input 'attention_mask'", r.All);
    }

    [Fact]
    public void Adversarial_search_on_token_ids_is_refused_at_plan_time_with_the_reason()
    {
        var dir = TestPaths.TempDir();
        Dataset(dir);
        var r = GateCli.Run("check", "--model", Model(dir), "--policy", Policy(dir, """
                - id: robustness
                  type: adversarial
                  dataset: d
                  threat: { norm: linf, epsilon: 0.5, input: input_ids }
                  search: [ { method: pgd, steps: 5 } ]
                  require: { robustAccuracy: { min: 0.5 } }
            """), "--out", Path.Combine(dir, "out"));
        Assert.True(r.ExitCode == 3, $"exit {r.ExitCode}\n{r.All}");
        Assert.Contains("policy.yaml:", r.All);
        Assert.Contains("'input_ids', which is int64", r.All);
        Assert.Contains("not a continuous threat model", r.All);
    }
}
