using System.Text;
using System.Text.Json.Nodes;
using Gate.Core.Governance;
using Gate.Core.Policy;
using Gate.Tests.Support;
using Gate.Tests.Tensors;
using SkiaSharp;

namespace Gate.Tests.Cli;

/// <summary>
/// policies/shapes-resnet8-release.yaml end to end: the trained ResNet-8 on its PNG folder, with the preprocessing
/// declared on its input, is decided by <c>gate check</c>; bad images are exit 3 naming the file; review and diff
/// read the preprocessing block.
/// </summary>
public class ImagePolicyTests
{
    private static string PolicyPath => Path.Combine(TestPaths.RepoRoot, "policies", "shapes-resnet8-release.yaml");
    private static string Model => Path.Combine(TestPaths.RepoRoot, "examples", "real-arch", "resnet8-shapes.onnx");

    /// <summary>
    /// The release policy with its data path made absolute and (where given) edits applied, written to a temp folder.
    /// The release policy asks for container isolation; the end-to-end run uses the process backend, so the copy
    /// lowers the floor to 'process' (which the process backend meets on every CI host) and says so here.
    /// </summary>
    private static string Copy(params (string Find, string Replace)[] edits)
    {
        var text = File.ReadAllText(PolicyPath).Replace("../examples/", Path.Combine(TestPaths.RepoRoot, "examples") + "/");
        foreach (var (f, r) in edits) { Assert.Contains(f, text); text = text.Replace(f, r); }
        var path = Path.Combine(TestPaths.TempDir("image-policy"), "policy.yaml");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Gate_check_decides_the_resnet_on_its_png_folder_with_declared_preprocessing()
    {
        var policy = Copy(("isolation: container", "isolation: process"));
        var outDir = TestPaths.TempDir("image-policy-out");
        var (exit, stdout, stderr) = GateCli.Run(["check", "--model", Model, "--policy", policy, "--out", outDir, "--sandbox", "process", "--json"], TimeSpan.FromMinutes(8));
        var decision = JsonNode.Parse(stdout)!;
        // Ground truth (MANIFEST.json: clean accuracy 1.0; PGD at 8/255 finds no counterexample on these 48 images): APPROVE.
        Assert.True(exit == 0, $"exit {exit}\n{stderr}\n{stdout}");
        Assert.Equal("approve", decision["decision"]!.GetValue<string>().ToLowerInvariant());
        var checks = decision["checks"]!.AsArray().ToDictionary(c => c!["id"]!.GetValue<string>());
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "examples", "real-arch", "MANIFEST.json")))!;
        Assert.Equal(manifest["resnet8-shapes.onnx"]!["cleanTestAccuracy"]!.GetValue<double>(), checks["accuracy"]!["metrics"]!["accuracy"]!.GetValue<double>());
        Assert.Equal(8.0 / 255, checks["robustness"]!["metrics"]!["epsilon"]!.GetValue<double>(), 1e-12);
        Assert.Equal(48, checks["robustness"]!["metrics"]!["samples"]!.GetValue<int>());

        // The decoded data is recorded like an array file: digests of the decoded .npy bytes (the policy's pins), and the source.
        var ds = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "decision.json")))!["datasets"]![0]!;
        Assert.Equal("573f993fc725c2c79c6f90ffec27c944700abd980770ffc222f9f4ef9c3d4f94", ds["inputs"]!["sha256"]!.GetValue<string>());
        Assert.Equal("image-folder", ds["inputs"]!["decodedFrom"]!["kind"]!.GetValue<string>());
        Assert.Equal(48, ds["inputs"]!["decodedFrom"]!["files"]!.GetValue<int>());
        Assert.Equal([48, 3, 32, 32], ds["inputs"]!["shape"]!.AsArray().Select(v => v!.GetValue<int>()));
    }

    [Fact]
    public void A_malformed_image_is_exit_3_naming_the_file()
    {
        var root = TestPaths.TempDir("image-policy-bad");
        ImageDatasetTests.Png(Path.Combine(root, "0_a", "ok.png"), 32, 32, SKColors.Red);
        var bad = Path.Combine(root, "1_b", "broken.png");
        Directory.CreateDirectory(Path.GetDirectoryName(bad)!);
        File.WriteAllBytes(bad, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, (byte)'I', (byte)'H', (byte)'D', (byte)'R', 1, 2, 3]);
        var policy = Copy((Path.Combine(TestPaths.RepoRoot, "examples") + "/real-arch/shapes/test", root), ("      sha256:\n        inputs: 573f993fc725c2c79c6f90ffec27c944700abd980770ffc222f9f4ef9c3d4f94\n        labels: 91acb18cefc06e4c56fd0102e9584bea8a30cf1c86b79884661874a164844510\n", ""));
        var outDir = TestPaths.TempDir("image-policy-bad-out");
        var (exit, _, stderr) = GateCli.Run("check", "--model", Model, "--policy", policy, "--out", outDir, "--sandbox", "process");
        Assert.Equal(3, exit);
        Assert.Contains(bad, stderr);
        Assert.Contains("malformed PNG", stderr);
        Assert.False(File.Exists(Path.Combine(outDir, "decision.json")));
    }

    [Fact]
    public void Images_that_are_not_the_pinned_ones_are_refused()
    {
        var root = TestPaths.TempDir("image-policy-swap");
        foreach (var f in Directory.EnumerateFiles(Path.Combine(TestPaths.RepoRoot, "examples", "real-arch", "shapes", "test"), "*.png", SearchOption.AllDirectories))
        {
            var to = Path.Combine(root, Path.GetRelativePath(Path.Combine(TestPaths.RepoRoot, "examples", "real-arch", "shapes", "test"), f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        ImageDatasetTests.Png(Path.Combine(root, "0_circle", "999.png"), 32, 32, SKColors.Red); // one image more
        var policy = Copy((Path.Combine(TestPaths.RepoRoot, "examples") + "/real-arch/shapes/test", root));
        var (exit, _, stderr) = GateCli.Run("check", "--model", Model, "--policy", policy, "--out", TestPaths.TempDir("image-policy-swap-out"), "--sandbox", "process");
        Assert.Equal(3, exit);
        Assert.Contains("not the digest the policy pins", stderr);
    }

    [Fact]
    public void An_image_folder_given_with_data_replaces_inputs_and_labels_and_is_held_to_the_pin()
    {
        var root = TestPaths.TempDir("image-policy-override");
        ImageDatasetTests.Png(Path.Combine(root, "0_circle", "a.png"), 32, 32, SKColors.Red);
        var policy = Copy();
        var loaded = PolicyLoader.Load(policy, new Dictionary<string, string> { ["test"] = root });
        Assert.Equal(root, loaded.Spec.Datasets["test"].InputsPath);
        Assert.Equal(root, loaded.Spec.Datasets["test"].LabelsPath);
        var (exit, _, stderr) = GateCli.Run("check", "--model", Model, "--policy", policy, "--data", $"test={root}", "--out", TestPaths.TempDir("image-policy-override-out"), "--sandbox", "process");
        Assert.Equal(3, exit);
        // Both the pixels and the labels are refused, each naming the one override that replaced them as typed.
        Assert.Contains($"spec.datasets.test.inputs: --data test={root}: dataset 'test' is pinned by sha256 and the policy does not allow overrides", stderr);
        Assert.Contains($"spec.datasets.test.labels: --data test={root}: dataset 'test' is pinned by sha256", stderr);
    }

    [Theory]
    [InlineData("range: [0.0, 1.0]", "range: [0.0, 255.0]", "declare range: [0, 1]")]
    [InlineData("mean: [0.485, 0.456, 0.406]", "mean: [0.485, 0.456]", "")] // the schema: 3 values
    [InlineData("std: [0.229, 0.224, 0.225]", "std: [0.229, 0.0, 0.225]", "std values must be positive")]
    [InlineData("inputs: ../examples/real-arch/shapes/test\n", "inputs: ../examples/real-arch/shapes/test\n      labels: y.npy\n", "carry their own labels")]
    public void Preprocessing_and_image_datasets_are_validated_where_declared(string find, string replace, string message)
    {
        var text = File.ReadAllText(PolicyPath);
        Assert.Contains(find, text);
        var e = Assert.Throws<PolicyException>(() => PolicyLoader.Parse(Encoding.UTF8.GetBytes(text.Replace(find, replace)), PolicyPath));
        Assert.Contains(message, e.Message);
        Assert.Contains("shapes-resnet8-release.yaml:", e.Message);
    }

    private static DeploymentPolicy Load(string find = "", string replace = "") =>
        PolicyLoader.Parse(Encoding.UTF8.GetBytes(find.Length == 0 ? File.ReadAllText(PolicyPath) : File.ReadAllText(PolicyPath).Replace(find, replace)), PolicyPath);

    [Fact]
    public void Review_states_the_preprocessing_and_reads_epsilon_per_pixel()
    {
        var text = PolicyReview.Render(Load());
        Assert.Contains("## Preprocessing", text);
        Assert.Contains("Input 'input': RGB pixels in [0, 1] → (x − [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]", text);
        Assert.Contains("ε = 0.0314 (= 8/255 per pixel", text);
        Assert.Contains("Dataset 'test' is images (one folder per class; sorted folder names give the labels)", text);
    }

    [Theory]
    [InlineData("channels: rgb", "channels: bgr", "preprocessing changed (channels)")]
    [InlineData("mean: [0.485, 0.456, 0.406]", "mean: [0.5, 0.5, 0.5]", "preprocessing changed (mean)")]
    [InlineData("          std: [0.229, 0.224, 0.225]\n", "", "preprocessing changed (std)")]
    [InlineData("          channels: rgb\n", "          channels: rgb\n          resize: [36]\n          centerCrop: [32, 32]\n", "preprocessing changed (resize, centerCrop)")]
    public void Diff_flags_every_preprocessing_change_as_not_neutral(string find, string replace, string why)
    {
        var changes = PolicyDiff.Compare(Load(), Load(find, replace));
        var change = Assert.Single(changes);
        Assert.Equal(ChangeKind.Weakening, change.Kind);
        Assert.Equal("spec.model.inputs.input.preprocess", change.Path);
        Assert.Contains(why, change.Why);
        Assert.Empty(PolicyDiff.Compare(Load(), Load()));
    }

    [Fact]
    public void Diff_flags_removing_the_preprocessing_block()
    {
        var text = File.ReadAllText(PolicyPath);
        int start = text.IndexOf("        preprocess:", StringComparison.Ordinal), end = text.IndexOf("  runtime:", StringComparison.Ordinal);
        var without = PolicyLoader.Parse(Encoding.UTF8.GetBytes(text[..start] + text[end..]), PolicyPath);
        var change = Assert.Single(PolicyDiff.Compare(Load(), without));
        Assert.Equal(ChangeKind.Weakening, change.Kind);
        Assert.Contains("preprocessing removed", change.Why);
    }
}
