using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>`gate run --runtime onnxruntime`, run as a separate process.</summary>
public class OrtCliTests
{
    [Fact]
    public void Gate_run_on_onnxruntime_writes_outputs_and_captures_matching_builtin()
    {
        OrtTestSupport.RequireOrt();
        var dir = TestPaths.TempDir("ort-cli");
        var x = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).SliceBatch(0, 5);
        var xPath = Path.Combine(dir, "x.npy");
        Npy.Write(xPath, x);
        var modelPath = TestPaths.FixtureModel("digits-cnn.onnx");
        var hidden = OnnxModelLoader.Load(modelPath).Graph.Nodes.First(n => n.OpType == "MaxPool").Outputs[0];
        var safe = Gate.Cli.Commands.RunCommand.SafeName(hidden);

        var (ortExit, ortOut, ortErr) = GateCli.Run("run", "-m", modelPath, "-i", $"input={xPath}",
            "--capture", hidden, "--runtime", "onnxruntime", "-o", Path.Combine(dir, "ort"));
        Assert.True(ortExit == 0, $"exit {ortExit}\n{ortOut}\n{ortErr}");
        var (bExit, _, bErr) = GateCli.Run("run", "-m", modelPath, "-i", $"input={xPath}",
            "--capture", hidden, "--runtime", "builtin", "-o", Path.Combine(dir, "builtin"));
        Assert.True(bExit == 0, bErr);
        foreach (var name in new[] { "logits", safe })
            OrtCompare.AssertClose("gate run digits-cnn", name,
                Npy.Read(Path.Combine(dir, "builtin", name + ".npy")), Npy.Read(Path.Combine(dir, "ort", name + ".npy")), OrtCompare.Float32);
    }

    [Fact]
    public void Model_rejected_by_onnxruntime_exits_3_with_ORTs_message()
    {
        OrtTestSupport.RequireOrt();
        var dir = TestPaths.TempDir("ort-cli-bad");
        var modelPath = Path.Combine(dir, "bad.onnx");
        File.WriteAllBytes(modelPath, OrtTestModels.UnknownOp());
        var xPath = Path.Combine(dir, "x.npy");
        Npy.Write(xPath, Tensor.FromFloats([1], [1f]));
        var (exit, stdout, stderr) = GateCli.Run("run", "-m", modelPath, "-i", $"x={xPath}", "--runtime", "onnxruntime", "-o", dir);
        Assert.True(exit == 3, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("bad.onnx", stderr);
        Assert.Contains("rejected the model", stderr);
        Assert.Contains("NoSuchOp", stderr); // ORT's own message names the operator it does not know
        Assert.DoesNotContain("   at ", stderr); // no stack trace
    }

    [Fact]
    public void Missing_library_exits_3_naming_both_remedies_and_builtin_still_runs()
    {
        var dir = TestPaths.TempDir("ort-cli-missing");
        var xPath = Path.Combine(dir, "x.npy");
        Npy.Write(xPath, Tensor.Zeros(DType.Float32, [1, 1, 8, 8]));
        var env = new Dictionary<string, string> { ["GATE_ORT_LIB"] = Path.Combine(dir, "no-such-libonnxruntime.so") };
        var model = TestPaths.FixtureModel("digits-mlp.onnx");
        // The host's GATE_ORT_LIB configures the process sandbox; a container carries its own library. An environment
        // variable: this needs a process of its own.
        var (exit, _, stderr) = GateProcess.Run(["run", "-m", model, "-i", $"input={xPath}", "--runtime", "onnxruntime", "--sandbox", "process", "-o", dir], env, TimeSpan.FromMinutes(2));
        Assert.True(exit == 3, $"exit {exit}\n{stderr}");
        Assert.Contains("GATE_ORT_LIB", stderr);
        Assert.Contains("./scripts/setup.sh", stderr);
        // Registering the ORT factory at start-up must not load the library: the builtin runtime is unaffected.
        var (bExit, _, bErr) = GateProcess.Run(["run", "-m", model, "-i", $"input={xPath}", "--runtime", "builtin", "--sandbox", "process", "-o", dir], env, TimeSpan.FromMinutes(2));
        Assert.True(bExit == 0, bErr);
    }
}
