using System.Diagnostics;
using Gate.Core.Model;
using Gate.Core.Model.Proto;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>
/// `gate run` as a process on sequence and optional values: a sequence goes in and out as .npz (arr_0, arr_1, …), an
/// optional input given no file is none, and an optional output that holds none is printed as none with no file. As a
/// process because ONNX Runtime 1.31.1's managed API segfaults on a none output (Gate reads such models through the
/// C API): a crash must show up here as a failing exit code, not take the test host down.
/// </summary>
public class RunCommandValueTests
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

    private static void RequireRuntime(string runtime) { if (runtime == "onnxruntime") Runtime.OrtTestSupport.RequireOrt(); }

    /// <summary>A conformance case through `gate run`: inputs written as gate run reads them, outputs compared.</summary>
    [Theory]
    [InlineData("test_identity_sequence", "builtin")]
    [InlineData("test_identity_sequence", "onnxruntime")]
    [InlineData("test_identity_opt", "builtin")]
    [InlineData("test_identity_opt", "onnxruntime")]
    public void Gate_run_carries_a_sequence_and_an_optional_sequence_as_npz(string caseName, string runtime)
    {
        RequireRuntime(runtime);
        var dir = Path.Combine(TestPaths.OnnxNodeTests, caseName);
        var model = OnnxModelLoader.Load(Path.Combine(dir, "model.onnx"));
        var work = TestPaths.TempDir();
        var input = model.Graph.Inputs[0];
        var pb = Path.Combine(dir, "test_data_set_0", "input_0.pb");
        var inPath = Path.Combine(work, "in.npz");
        TensorProtoCodec.ParseSerializedValue(File.ReadAllBytes(pb), pb, input.Type).Write(inPath);
        var outDir = Path.Combine(work, "out");
        var (code, stdout, stderr) = RunGate("run", "--model", Path.Combine(dir, "model.onnx"), "--runtime", runtime, "--output-dir", outDir, "--input", $"{input.Name}={inPath}");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        var output = model.Graph.Outputs[0];
        var expectedPb = Path.Combine(dir, "test_data_set_0", "output_0.pb");
        var expected = TensorProtoCodec.ParseSerializedValue(File.ReadAllBytes(expectedPb), expectedPb, output.Type).Sequence!;
        var actual = ModelValue.Read(Path.Combine(outDir, output.Name + ".npz")).Sequence!;
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++) Assert.Null(OnnxConformanceTests.Compare(actual[i], expected[i]));
        Assert.Contains($"{output.Name}\tsequence of {expected.Count}", stdout);
    }

    [Theory]
    [InlineData("builtin")]
    [InlineData("onnxruntime")]
    public void An_optional_input_left_out_is_none_and_so_is_its_identity(string runtime)
    {
        RequireRuntime(runtime);
        var outDir = Path.Combine(TestPaths.TempDir(), "out");
        var (code, stdout, stderr) = RunGate("run", "--model", Path.Combine(TestPaths.OnnxNodeTests, "test_identity_opt", "model.onnx"), "--runtime", runtime, "--output-dir", outDir);
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("opt_out\tnone", stdout);
        Assert.Empty(Directory.Exists(outDir) ? Directory.GetFiles(outDir) : []);
    }

    /// <summary>An Optional node with no input: its output holds none. ONNX Runtime 1.31.1's managed API segfaults
    /// reading it (measured: exit 139 of the process that read it); through the C API it is none, exit 0.</summary>
    internal static string NoneModel(string dir)
    {
        var tensor = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DType.Float32 } };
        var b = new OnnxBuilder(opset: 16, irVersion: 8);
        b.Graph.Output.Add(new ValueInfoProto { Name = "y", Type = new TypeProto { OptionalType = new TypeProto.Types.Optional { ElemType = tensor } } });
        b.Node("Optional", [], ["y"], "empty", new AttributeProto { Name = "type", Type = 13, Tp = tensor });
        return b.Save(Path.Combine(dir, "none.onnx"));
    }

    [Fact]
    public void An_optional_output_that_holds_none_on_onnxruntime_is_none_not_a_crash()
    {
        Runtime.OrtTestSupport.RequireOrt();
        var dir = TestPaths.TempDir();
        var (code, stdout, stderr) = RunGate("run", "--model", NoneModel(dir), "--runtime", "onnxruntime", "--output-dir", Path.Combine(dir, "out"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("y\tnone", stdout);
    }

    [Fact]
    public void The_builtin_engine_refuses_an_optional_it_would_have_to_compute_naming_the_node()
    {
        var dir = TestPaths.TempDir();
        var (code, stdout, stderr) = RunGate("run", "--model", NoneModel(dir), "--output-dir", Path.Combine(dir, "out"));
        Assert.True(code == 3, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("node empty (Optional) writes a sequence or optional value", stdout + stderr);
        Assert.Contains("run it on ONNX Runtime", stdout + stderr);
    }

    [Fact]
    public void A_hostile_sequence_npz_is_bad_input_with_exit_3()
    {
        var work = TestPaths.TempDir();
        var inPath = Path.Combine(work, "in.npz");
        File.WriteAllBytes(inPath, Npy.ComposeNpz([("arr_0", Npy.ToBytes(Tensor.FromFloats([1], [1]))), ("payload", Npy.ToBytes(Tensor.FromFloats([1], [2])))]));
        var (code, stdout, stderr) = RunGate("run", "--model", Path.Combine(TestPaths.OnnxNodeTests, "test_identity_sequence", "model.onnx"), "--output-dir", Path.Combine(work, "out"), "--input", $"x={inPath}");
        Assert.True(code == 3, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("'payload.npy' is not one of them", stdout + stderr);
        Assert.DoesNotContain("   at ", stdout + stderr);
    }

    /// <summary>Everywhere else (the checks) ONNX Runtime is reached through the managed API: there an optional
    /// output is refused by name before the run, not read (which would take this test host down with a segfault).</summary>
    [Fact]
    public void The_managed_onnxruntime_session_refuses_to_fetch_an_optional_output()
    {
        Runtime.OrtTestSupport.RequireOrt();
        var model = File.ReadAllBytes(NoneModel(TestPaths.TempDir()));
        using var session = Gate.Core.Runtime.OnnxRuntime.OrtSession.Create(model, "none.onnx", new(IntraOpThreads: 1));
        var e = Assert.Throws<Gate.Core.GateInputException>(() => session.Run(new Dictionary<string, Tensor>()));
        Assert.Contains("output 'y' is an optional", e.Message);
    }
}
