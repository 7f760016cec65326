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

    private static string Policy(string dir, string checks)
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
                d: { inputs: tokens.npz, labels: labels.npy }
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
