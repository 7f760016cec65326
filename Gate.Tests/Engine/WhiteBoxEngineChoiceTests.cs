using Gate.Core.Platform;
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
    public void Auto_outside_the_runner_keeps_the_builtin_engine_says_why_and_records_no_timing()
    {
        // Outside the runner torch does not exist, so nothing is measured and the reason is the same every time.
        var (engine, choice) = WhiteBoxEngines.Choose(Digits, "auto");
        Assert.Equal("builtin", engine.Name);
        Assert.Equal(("auto", "builtin"), (choice.Requested, choice.Engine));
        Assert.Contains("not available outside the sandbox runner", choice.Reason);
        Assert.Null(choice.BuiltinMs);
        Assert.Equal(choice, WhiteBoxEngines.Choose(Digits, "auto").Item2);
    }

    /// <summary>auto times its engines at the batch the checks' gradient passes run (the estimate's too), not at 1:
    /// the engines rank differently there. A batch that an input fixes stays.</summary>
    [Fact]
    public void Auto_measures_at_the_checks_batch_unless_the_model_fixes_its_batch()
    {
        OnnxModel Model(long batch)
        {
            var b = new OnnxBuilder(); b.Input("x", batch, 4); b.Node("Relu", ["x"], ["y"]); b.Output("y", batch, 4);
            return OnnxModelLoader.Load(b.Save(Path.Combine(TestPaths.TempDir("gate-auto-batch"), "m.onnx")));
        }
        Assert.Equal([WhiteBoxEngines.MeasuredBatch, 4], WhiteBoxEngines.ProbeInputs(Model(-1))!["x"].Shape);
        Assert.Equal([1, 4], WhiteBoxEngines.ProbeInputs(Model(1))!["x"].Shape);
    }

    [Fact]
    public void Auto_does_not_consider_torch_for_operators_outside_its_differential_tests()
    {
        var b = new OnnxBuilder([1, 4]);
        var y = b.Node("Exp", [b.Node("Relu", [b.InputName])]);
        var model = b.Build(y, [1, 4]);
        Assert.Equal("operator(s) Exp are not in the torch engine's differential tests (engine: torch opts in)", WhiteBoxEngines.TorchUnverified(model));
        Assert.Null(WhiteBoxEngines.TorchUnverified(Digits));
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
    public void Runtimes_record_flush_to_zero_only_where_it_is_guaranteed()
    {
        // ONNX Runtime on the CPU: its pool threads flush by its session option, the calling thread by OrtSession.Run
        // (FloatingPointEnvironmentTests). The built-in engine sets the mode on its calling thread and its fork-join
        // helpers for each pass (SubnormalFlushTests).
        OrtTestSupport.RequireOrt();
        using var s = new OnnxRuntimeInference().Load(Digits, new RuntimeOptions());
        Assert.True(s.Info.FlushDenormals);
        using var b = new BuiltinRuntime().Load(Digits, new RuntimeOptions());
        Assert.True(b.Info.FlushDenormals);
    }
}
