using Gate.Core;
using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>
/// The CUDA path up to the device boundary. Without a usable CUDA provider (the pinned npm build has none linked
/// in, and this machine has no GPU) a GPU request must be recorded as a fallback and a GPU requirement must make
/// the production runtime unavailable, never silently run on the CPU. With a CUDA build and a GPU the same tests
/// check the other branch.
/// </summary>
public class OrtGpuTests
{
    private static OnnxModel Mlp() => OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));

    [Fact]
    public void Gpu_request_runs_on_cuda_or_records_why_not()
    {
        OrtTestSupport.RequireOrt();
        var model = Mlp();
        using var s = new OnnxRuntimeInference().Load(model, new RuntimeOptions(UseGpu: true));
        TestContext.Current.TestOutputHelper?.WriteLine($"{s.Info}");
        if (s.Info.Provider == OrtSession.CudaProvider)
        {
            Assert.Null(s.Info.FallbackReason);
            Assert.StartsWith("cuda:", s.Info.Device);
        }
        else
        {
            Assert.Equal(OrtSession.CpuProvider, s.Info.Provider);
            Assert.Equal("cpu", s.Info.Device);
            Assert.False(string.IsNullOrWhiteSpace(s.Info.FallbackReason));
            Assert.Contains(OrtSession.CudaProvider, s.Info.FallbackReason);
        }
        // Whatever ran, it computes the model.
        var x = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).SliceBatch(0, 8);
        var builtin = Gate.Core.Engine.CompiledModel.Compile(model).Run(x);
        OrtCompare.AssertClose("digits-mlp (gpu request)", "logits", builtin, s.RunSingle(x), OrtCompare.Float32);
    }

    [Fact]
    public void Required_gpu_without_cuda_makes_the_production_runtime_unavailable()
    {
        OrtTestSupport.RequireOrt();
        var model = Mlp();
        var policy = PolicyLoader.Load(Path.Combine(TestPaths.RepoRoot, "policies", "digits-release.yaml"));
        Assert.Equal("onnxruntime", policy.Spec.Runtime);
        var (session, reason) = ProductionRuntime.Open(policy, model, new RuntimeOptions(UseGpu: true, RequireGpu: true));
        using (session)
        {
            if (session is not null)
            {
                // Only acceptable when CUDA really is in use.
                Assert.Equal(OrtSession.CudaProvider, session.Info.Provider);
                return;
            }
            Assert.NotNull(reason);
            Assert.Contains("gpu: required", reason);
            Assert.Contains(OrtSession.CudaProvider, reason);
        }
        Assert.Throws<GateComponentMissingException>(() => new OnnxRuntimeInference().Load(model, new RuntimeOptions(RequireGpu: true)));

        var builtinPolicy = policy with { Spec = policy.Spec with { Runtime = "builtin" } };
        var (b, why) = ProductionRuntime.Open(builtinPolicy, model, new RuntimeOptions(RequireGpu: true));
        Assert.Null(b);
        Assert.Contains("gpu: required", why);
    }
}
