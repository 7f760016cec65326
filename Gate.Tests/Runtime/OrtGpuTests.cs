using Gate.Core;
using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>
/// The CUDA path up to the device boundary. Without a usable CUDA provider (the default build ships ORT's CPU
/// package; the CUDA package's provider needs CUDA 13 libraries this machine lacks, and there is no GPU) a GPU request
/// must be recorded as a fallback naming the real cause, and a GPU requirement must make the production runtime
/// unavailable, never silently run on the CPU. With the GPU flavour on a GPU machine the same tests check the other branch.
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
            Assert.DoesNotContain("DefaultLogger", s.Info.FallbackReason);
            // The CPU package has no CUDA provider: the reason says so and names the GPU flavour.
            if (!OrtLibrary.AvailableProviders().Contains(OrtSession.CudaProvider)) Assert.Contains("-p:GateGpu=true", s.Info.FallbackReason);
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

    /// <summary>A hard link (instant, no space) where the file system allows it, else a copy.</summary>
    private static void HardLinkOrCopy(string from, string to)
    {
        using var ln = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ln", [from, to]) { RedirectStandardError = true })!;
        ln.WaitForExit();
        if (ln.ExitCode != 0) File.Copy(from, to);
    }

    /// <summary>The CUDA package's libonnxruntime.so (downloaded for the tests, see Gate.Tests.csproj).</summary>
    private static string GpuLibrary() => typeof(OrtGpuTests).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
        .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "OrtGpuLibrary").Value!;

    /// <summary>
    /// `gate check --gpu` with the CUDA build of ORT (GATE_ORT_LIB, as a user's own build would be given): on a machine
    /// without CUDA 13 the decision records the CPU provider and, as the fallback reason, ORT's real load error naming
    /// the missing CUDA library. (Before the environment was created ahead of the provider, ORT could only say
    /// "Attempt to use DefaultLogger but none has been registered".)
    /// </summary>
    [Fact]
    public void Cuda_build_without_cuda_libraries_records_the_real_load_error()
    {
        OrtTestSupport.RequireOrt();
        var lib = GpuLibrary();
        Assert.True(File.Exists(lib), $"{lib} is missing: restore Gate.Tests (it downloads Microsoft.ML.OnnxRuntime.Gpu.Linux)");
        var dir = TestPaths.TempDir("ort-cuda-fallback");
        // The process sandbox runs the runner as an unprivileged user, who cannot enter the NuGet cache under /root:
        // give it the library (with the provider libraries ORT looks for beside it) in a folder it can read.
        var ortDir = Directory.CreateDirectory(Path.Combine(dir, "ort-gpu")).FullName;
        foreach (var f in new[] { "libonnxruntime.so", "libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so" })
            HardLinkOrCopy(Path.Combine(Path.GetDirectoryName(lib)!, f), Path.Combine(ortDir, f));
        lib = Path.Combine(ortDir, "libonnxruntime.so");
        var policy = Path.Combine(dir, "policy.yaml");
        File.WriteAllText(policy, $"""
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: {"{"} name: cuda-fallback, owner: gate-tests {"}"}
            spec:
              model:
                format: onnx
                inputs:
                  input: {"{"} shape: [-1, 1, 8, 8], range: [0.0, 1.0] {"}"}
              runtime: onnxruntime
              sandbox: {"{"} isolation: process, gpu: optional {"}"}
              seed: 1
              datasets:
                test: {"{"} inputs: {TestPaths.FixtureData("digits_test_x.npy")}, labels: {TestPaths.FixtureData("digits_test_y.npy")} {"}"}
              checks:
                - id: accuracy
                  type: accuracy
                  dataset: test
                  require: {"{"} min: 0.95 {"}"}
            """);
        var outDir = Path.Combine(dir, "out");
        var (exit, stdout, stderr) = GateProcess.Run(
            ["check", "-m", TestPaths.FixtureModel("digits-mlp.onnx"), "-p", policy, "-o", outDir, "--sandbox", "process", "--gpu"],
            new Dictionary<string, string> { [OrtLibrary.PathVariable] = lib }, TimeSpan.FromMinutes(3));
        var decision = Path.Combine(outDir, "decision.json");
        Assert.True(File.Exists(decision), $"exit {exit}\n{stdout}\n{stderr}");
        var runtime = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(decision))!["runtime"];
        Assert.True(runtime is not null, $"no runtime recorded (exit {exit})\n{stdout}\n{stderr}");
        TestContext.Current.TestOutputHelper?.WriteLine(runtime.ToJsonString());
        Assert.StartsWith(OrtLibrary.PackageVersion + ".", runtime["version"]!.GetValue<string>());
        if (runtime["provider"]!.GetValue<string>() == OrtSession.CudaProvider) { Assert.StartsWith("cuda:", runtime["device"]!.GetValue<string>()); return; }
        Assert.Equal(0, exit); // the accuracy check still passes on the CPU
        Assert.Equal(OrtSession.CpuProvider, runtime["provider"]!.GetValue<string>());
        Assert.Equal("cpu", runtime["device"]!.GetValue<string>());
        var reason = runtime["fallbackReason"]!.GetValue<string>();
        Assert.DoesNotContain("DefaultLogger", reason);
        Assert.Contains("libonnxruntime_providers_cuda.so", reason);
        Assert.Matches(@"lib(cudart|cublas|cublasLt|curand|cudnn|cufft)\.so\.\d+", reason); // the CUDA library that is missing
    }
}
