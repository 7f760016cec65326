using System.Diagnostics;
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

/// <summary>`gate run` as a process on the dtypes .npy gained (int8, uint64, float16) and on a model without inputs.</summary>
public class RunCommandDTypeTests
{
    private static (int Code, string Out, string Err) RunGate(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "gate.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(); var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), "gate run did not finish within 120 s");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>One conformance case through `gate run` (inputs and outputs as .npy) on the given runtime.</summary>
    private static void RunCase(string caseName, string runtime)
    {
        var dir = Path.Combine(TestPaths.OnnxNodeTests, caseName);
        var model = OnnxModelLoader.Load(Path.Combine(dir, "model.onnx"));
        var work = TestPaths.TempDir();
        var args = new List<string> { "run", "--model", Path.Combine(dir, "model.onnx"), "--output-dir", Path.Combine(work, "out"), "--runtime", runtime };
        for (int i = 0; i < model.Graph.Inputs.Count; i++)
        {
            var pb = Path.Combine(dir, "test_data_set_0", $"input_{i}.pb");
            var npy = Path.Combine(work, $"in{i}.npy");
            Npy.Write(npy, TensorProtoCodec.ParseSerialized(File.ReadAllBytes(pb), pb));
            args.AddRange(["--input", $"{model.Graph.Inputs[i].Name}={npy}"]);
        }
        var (code, stdout, stderr) = RunGate([.. args]);
        Assert.True(code == 0, $"{caseName} on {runtime}: exit {code}\n{stdout}\n{stderr}");
        for (int o = 0; o < model.Graph.Outputs.Count; o++)
        {
            var pb = Path.Combine(dir, "test_data_set_0", $"output_{o}.pb");
            var expected = TensorProtoCodec.ParseSerialized(File.ReadAllBytes(pb), pb);
            var actual = Npy.Read(Path.Combine(work, "out", global::Gate.Cli.Commands.RunCommand.SafeName(model.Graph.Outputs[o].Name) + ".npy"));
            Assert.Null(OnnxConformanceTests.Compare(actual, expected));
        }
    }

    [Theory]
    [InlineData("test_add_int8", "builtin")]
    [InlineData("test_div_uint64", "builtin")]
    [InlineData("test_cast_FLOAT_to_FLOAT16", "builtin")]
    [InlineData("test_constant", "builtin")]
    public void Gate_run_carries_every_standard_dtype_and_runs_a_model_without_inputs(string caseName, string runtime) => RunCase(caseName, runtime);

    [Theory]
    [InlineData("test_add_int8")]
    [InlineData("test_constant")]
    public void Gate_run_on_onnxruntime_carries_them_too(string caseName)
    {
        Gate.Tests.Runtime.OrtTestSupport.RequireOrt();
        RunCase(caseName, "onnxruntime");
    }

    /// <summary>
    /// Narrow element types (float8, int4, uint2, float8e8m0) in and out of ONNX Runtime: the managed API cannot
    /// describe them, so Gate opens such models through ORT's C API (OrtNativeSession). uint2 and float8e8m0 also
    /// check the C API's own numbering of the last three types (it differs from ONNX's).
    /// </summary>
    [Theory]
    [InlineData("test_cast_FLOAT_to_FLOAT8E4M3FN")]
    [InlineData("test_cast_FLOAT8E5M2_to_FLOAT")]
    [InlineData("test_cast_INT4_to_FLOAT")]
    [InlineData("test_cast_FLOAT_to_UINT2")]
    [InlineData("test_cast_INT2_to_INT8")]
    [InlineData("test_cast_e8m0_FLOAT8E8M0_to_FLOAT")]
    public void Gate_run_on_onnxruntime_carries_the_narrow_types(string caseName)
    {
        Gate.Tests.Runtime.OrtTestSupport.RequireOrt();
        RunCase(caseName, "onnxruntime");
    }

    [Fact]
    public void Gate_run_names_a_missing_input_with_exit_3()
    {
        var (code, stdout, stderr) = RunGate("run", "--model", Path.Combine(TestPaths.OnnxNodeTests, "test_add_int8", "model.onnx"), "--output-dir", Path.Combine(TestPaths.TempDir(), "o"));
        Assert.Equal(3, code);
        Assert.Contains("no value for the model's input 'x'", stdout + stderr);
    }
}
