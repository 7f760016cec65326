using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>`gate run` as a separate process: outputs and captured tensors land as .npy and match the engine.</summary>
public class RunCommandTests
{
    private static (int Code, string Out, string Err) RunGate(params string[] args)
    {
        var r = GateCli.Run(args);
        return (r.ExitCode, r.Stdout, r.Stderr);
    }

    [Fact]
    public void Gate_run_writes_outputs_and_captured_tensors_as_npy()
    {
        var modelPath = TestPaths.FixtureModel("digits-cnn.onnx");
        var model = OnnxModelLoader.Load(modelPath);
        var captured = model.Graph.Nodes.First(n => n.OpType == "MaxPool").Outputs[0];
        var dir = TestPaths.TempDir();
        var x = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).SliceBatch(0, 8);
        var xPath = Path.Combine(dir, "x.npy");
        Npy.Write(xPath, x);
        var outDir = Path.Combine(dir, "out");

        var (code, stdout, stderr) = RunGate("run", "--model", modelPath, "--input", $"input={xPath}", "--output-dir", outDir, "--capture", captured);
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");

        var expected = CompiledModel.Compile(model).Forward(new Dictionary<string, Tensor> { ["input"] = x }, capture: [captured]);
        var logits = Npy.Read(Path.Combine(outDir, "logits.npy"));
        Assert.Equal(new[] { 8, 10 }, logits.Shape);
        Assert.Equal(expected["logits"].Floats!.Take(80), logits.Floats!.Take(80));
        var labels = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray();
        int correct = Enumerable.Range(0, 8).Count(i => Enumerable.Range(0, 10).MaxBy(k => logits.Floats![i * 10 + k]) == labels[i]);
        Assert.True(correct >= 7, $"only {correct}/8 of the written logits classify correctly");

        var cap = Npy.Read(Path.Combine(outDir, global::Gate.Cli.Commands.RunCommand.SafeName(captured) + ".npy"));
        Assert.Equal(new[] { 8, 8, 4, 4 }, cap.Shape); // Conv 1→8 3×3 pad 1 on 8×8, then MaxPool 2
        Assert.Equal(expected[captured].Floats!.Take(cap.Length), cap.Floats!.Take(cap.Length));
        Assert.Contains(captured, stdout);
    }

    [Fact]
    public void Gate_run_rejects_an_unknown_tensor_with_exit_3_and_no_stack_trace()
    {
        var dir = TestPaths.TempDir();
        var xPath = Path.Combine(dir, "x.npy");
        Npy.Write(xPath, Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).SliceBatch(0, 1));
        var (code, stdout, stderr) = RunGate("run", "--model", TestPaths.FixtureModel("digits-mlp.onnx"), "--input", $"input={xPath}", "--output-dir", Path.Combine(dir, "o"), "--capture", "not-a-tensor");
        Assert.Equal(3, code);
        Assert.Contains("not-a-tensor", stdout + stderr);
        Assert.DoesNotContain("   at ", stdout + stderr);
    }
}
