using Gate.Core;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Tests.Runtime;
using Gate.Tests.Sandbox;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>The policy's <c>engine</c> outside the runner, its way through the bound plan, and what runtimes record about subnormals.</summary>
public class WhiteBoxEngineChoiceTests
{
    private static OnnxModel Digits => OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));

    [Fact]
    public void Auto_keeps_the_builtin_engine_says_why_and_records_no_timing()
    {
        // The reason is part of the decision, which shards, Slurm tasks and replays must reproduce exactly.
        var (engine, choice) = WhiteBoxEngines.Choose(Digits, "auto");
        Assert.Equal("builtin", engine.Name);
        Assert.Equal(("auto", "builtin"), (choice.Requested, choice.Engine));
        Assert.Contains("explicit opt-in", choice.Reason);
        Assert.Equal(choice, WhiteBoxEngines.Choose(Digits, "auto").Item2);
    }

    [Fact]
    public void Torch_outside_the_runner_is_a_missing_component_not_a_silent_fallback()
    {
        var e = Assert.Throws<GateComponentMissingException>(() => WhiteBoxEngines.Choose(Digits, "torch"));
        Assert.Contains("sandbox runner", e.Message);
    }

    [Fact]
    public void The_engine_travels_from_the_policy_through_the_bound_plan()
    {
        var dir = TestPaths.TempDir("gate-engine");
        var path = SandboxTestJobs.WritePolicy(dir);
        File.WriteAllText(path, File.ReadAllText(path).Replace("  runtime: builtin\n", "  runtime: builtin\n  engine: torch\n"));
        var policy = PolicyLoader.Load(path);
        Assert.Equal("torch", policy.Spec.Engine);
        var plan = CheckPlan.Create(policy, OnnxModelLoader.Load(SandboxTestJobs.ModelPath));
        var (view, _) = BoundPlan.FromJson(BoundPlan.Of(plan, plan.Checks).ToJson()).Executable(p => p);
        Assert.Equal("torch", view.Spec.Engine);
    }

    [Fact]
    public void An_unknown_engine_is_refused_with_its_location()
    {
        var dir = TestPaths.TempDir("gate-engine");
        var path = SandboxTestJobs.WritePolicy(dir);
        File.WriteAllText(path, File.ReadAllText(path).Replace("  runtime: builtin\n", "  runtime: builtin\n  engine: fast\n"));
        var e = Assert.ThrowsAny<GateInputException>(() => PolicyLoader.Load(path));
        Assert.Contains("engine", e.Message);
    }

    [Fact]
    public void Onnx_runtime_flushes_subnormals_and_records_it()
    {
        OrtTestSupport.RequireOrt();
        using var s = new OnnxRuntimeInference().Load(Digits, new RuntimeOptions());
        Assert.True(s.Info.FlushDenormals);
        using var b = new BuiltinRuntime().Load(Digits, new RuntimeOptions());
        Assert.False(b.Info.FlushDenormals);

        // And does it: a subnormal times 0.5 comes out as zero (without the session option it stays subnormal).
        var half = new OnnxBuilder([1, 4]);
        var y = half.Node("Mul", [half.InputName, half.Init([0.5f], 1)]);
        var model = half.Build(y, [1, 4]);
        // On a thread of its own: ONNX Runtime sets FTZ/DAZ on the threads it owns and on the thread that opens the
        // session; a test-runner thread that other tests' native code ran on could carry any mode.
        float[]? outp = null;
        var t = new Thread(() =>
        {
            using var m = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1));
            var x = Gate.Core.Tensors.Tensor.FromFloats([1, 4], [1e-40f, -3e-39f, 1e-30f, 2f]);
            outp = m.RunSingle(x).ToFloatArray();
        });
        t.Start();
        t.Join();
        Assert.Equal([0f, 0f, 5e-31f, 1f], outp!);
    }
}
