using System.Diagnostics;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Engine;
using Gate.Core.Tensors;
using Gate.Sandbox;
using Gate.Sandbox.Bubblewrap;
using Gate.Sandbox.Protocol;
using Gate.Tests.Support;
using Gate.Core.Model.Proto;

namespace Gate.Tests.Engine;

/// <summary>
/// Where the torch engine computes (issue #17's GPU flavour, docs/gpu.md). No GPU here: the choice is tested as a
/// rule, the CPU fallback end to end through <c>gate check --gpu</c>, and the engine's device discipline on libtorch's
/// meta device, where a pass that leaves a tensor on the host fails as it would on a GPU. The CUDA run itself is
/// not tested here (libtorch's CUDA build is not served by this project's registry).
/// </summary>
public class TorchDeviceTests
{
    [Fact]
    public void No_gpu_asked_for_computes_on_the_cpu_without_a_reason() =>
        Assert.Equal((TorchDevice.Cpu, (string?)null), TorchDevice.Choose(GpuRequest.None, cudaDevices: 2));

    [Fact]
    public void A_gpu_asked_for_and_present_is_used() =>
        Assert.Equal((TorchDevice.Cuda, (string?)null), TorchDevice.Choose(new GpuRequest(Use: true), cudaDevices: 1));

    [Fact]
    public void An_optional_gpu_that_is_absent_falls_back_to_the_cpu_and_says_why()
    {
        var (device, why) = TorchDevice.Choose(new GpuRequest(Use: true), cudaDevices: 0, "CUDA is not available.");
        Assert.Equal(TorchDevice.Cpu, device);
        Assert.Equal("the torch engine sees no CUDA device (CUDA is not available.)", why);
    }

    [Fact]
    public void A_required_gpu_that_is_absent_is_refused_never_run_elsewhere()
    {
        var e = Assert.Throws<GateComponentMissingException>(() => TorchDevice.Choose(new GpuRequest(Use: true, Require: true), cudaDevices: 0));
        Assert.StartsWith("gpu: required, but the torch engine sees no CUDA device", e.Message);
    }

    /// <summary>A dense layer, a float Constant (created by the lowering on the host) multiplied in, tanh, a dense
    /// head. (No convolution or ReLU: libtorch 2.10 has no meta kernel for them.)</summary>
    private static string DenseWithConstant(string dir)
    {
        var rng = new Random(7);
        var b = new OnnxBuilder([1, 16]);
        var scale = new AttributeProto { Name = "value_floats", Type = 6 };
        scale.Floats.AddRange(Enumerable.Range(0, 32).Select(i => 0.5f + i / 32f));
        b.Node("Constant", [], ["scale"], "scale", scale);
        var hidden = b.Node("Tanh", [b.Node("Mul", [b.Dense(b.InputName, 16, 32, rng), "scale"])]);
        var y = b.Dense(hidden, 32, 4, rng);
        b.Build(y, [1, 4]);
        return b.Save(Path.Combine(dir, "model.onnx"));
    }

    /// <summary>
    /// The runner's bench aid on the meta device, in the runner's rootfs under bubblewrap (libtorch loads only there):
    /// forward and forward + input-gradient passes. Had the Constant stayed on the host, libtorch would refuse the Mul
    /// ("Expected all tensors to be on the same device"), as CUDA would.
    /// </summary>
    [Fact]
    public void Every_tensor_of_a_pass_stays_on_the_engines_device()
    {
        TorchEngineDifferentialTests.NeedSandbox();
        var dir = TestPaths.TempDir("gate-device");
        var job = Directory.CreateDirectory(Path.Combine(dir, "job")).FullName;
        var results = Directory.CreateDirectory(Path.Combine(dir, "results")).FullName;
        DenseWithConstant(job);
        var r = BenchInSandbox(new StagedJob(dir, job, results), ["--bench", "/job/model.onnx", "--runtime", "torch", "--device", "meta", "--batch", "2", "--repeat", "1"]);
        Assert.True(r.ExitCode == 0, $"runner --bench --device meta exited {r.ExitCode}\n{r.All}");
        var line = JsonNode.Parse(r.Stdout.Trim().Split('\n')[^1])!;
        Assert.Equal("meta", (string?)line["device"]);
        Assert.Equal(1, (int?)line["forwardGradientMs"]?["n"]);
    }

    /// <summary>
    /// glibc in the runner's rootfs accepts the raised allocator thresholds (NativeHeap): without them a large model's
    /// every gradient step maps, zero-fills and unmaps its activations anew (docs/benchmarks/torch.md measures it).
    /// </summary>
    [Fact]
    public void The_torch_engine_keeps_freed_tensor_memory_for_the_next_pass()
    {
        TorchEngineDifferentialTests.NeedSandbox();
        var dir = TestPaths.TempDir("gate-heap");
        var job = Directory.CreateDirectory(Path.Combine(dir, "job")).FullName;
        var results = Directory.CreateDirectory(Path.Combine(dir, "results")).FullName;
        DenseWithConstant(job);
        var r = BenchInSandbox(new StagedJob(dir, job, results), ["--bench", "/job/model.onnx", "--runtime", "torch", "--batch", "2", "--repeat", "1"]);
        Assert.True(r.ExitCode == 0, $"runner --bench exited {r.ExitCode}\n{r.All}");
        Assert.Equal("kept", (string?)JsonNode.Parse(r.Stdout.Trim().Split('\n')[^1])!["nativeHeap"]);
    }

    /// <summary><c>gate check --gpu</c> with <c>engine: torch</c> where libtorch has no CUDA: the check runs on the CPU, and
    /// the decision records the device and why (runtime.whiteBox.device, gpuFallback).</summary>
    [Fact]
    public void A_gpu_asked_for_where_libtorch_has_none_is_recorded_with_the_reason()
    {
        TorchEngineDifferentialTests.NeedSandbox();
        var dir = TestPaths.TempDir("gate-device");
        var model = DenseWithConstant(dir);
        var rng = new Random(5);
        Npy.Write(Path.Combine(dir, "x.npy"), Tensor.FromFloats([2, 16], Enumerable.Range(0, 2 * 16).Select(_ => rng.NextSingle()).ToArray()));
        Npy.Write(Path.Combine(dir, "y.npy"), Tensor.FromLongs([2], [0, 1]));
        File.WriteAllText(Path.Combine(dir, "policy.yaml"), """
            apiVersion: gate/v1
            kind: DeploymentPolicy
            metadata: { name: device, owner: tests }
            spec:
              model:
                format: onnx
                inputs:
                  x: { shape: [-1, 16], range: [0.0, 1.0] }
              runtime: onnxruntime
              engine: torch
              sandbox:
                gpu: optional
                limits: { memory: 4Gi, cpus: 2, timeout: 5m }
              seed: 1
              datasets:
                d: { inputs: x.npy, labels: y.npy }
              checks:
                - id: pgd
                  type: adversarial
                  dataset: d
                  samples: 2
                  threat: { norm: linf, epsilon: 0.0001 }
                  search:
                    - { method: pgd, steps: 1, restarts: 1 }
                  require: { robustAccuracy: { min: 0.0 } }
            """);
        var r = GateCli.Run(["check", "-m", model, "-p", Path.Combine(dir, "policy.yaml"), "--sandbox", "bubblewrap", "-o", Path.Combine(dir, "out")], TimeSpan.FromMinutes(5));
        Assert.True(r.ExitCode is 0 or 1, $"gate check exited {r.ExitCode}\n{r.All}");
        var decision = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "out", "decision.json")))!;
        var choice = Find(decision, "whiteBox") ?? throw new Xunit.Sdk.XunitException($"no whiteBox record:\n{decision}");
        Assert.Equal("torch", (string?)choice["engine"]);
        Assert.Equal("cpu", (string?)choice["device"]);
        Assert.StartsWith("the torch engine sees no CUDA device", (string?)choice["gpuFallback"]);
        Assert.True((bool?)choice["flushDenormals"]);
    }

    private static JsonObject? Find(JsonNode? node, string key) => node switch
    {
        JsonObject o when o[key] is JsonObject hit => hit,
        JsonObject o => o.Select(kv => Find(kv.Value, key)).FirstOrDefault(h => h is not null),
        JsonArray a => a.Select(v => Find(v, key)).FirstOrDefault(h => h is not null),
        _ => null,
    };

    /// <summary>The bubblewrap backend's own command line (rootfs, binds, cleared environment), with the runner's
    /// job arguments replaced by <paramref name="runnerArgs"/>.</summary>
    private static ProcessResult BenchInSandbox(StagedJob staged, string[] runnerArgs)
    {
        var caps = new BubblewrapBackend.HostCapabilities(null, DropUser: false, Prlimit: false, Cgroups: false);
        var limits = new Gate.Core.Policy.ResourceLimits(4L << 30, 2, TimeSpan.FromMinutes(3), 256);
        var argv = BubblewrapBackend.CommandLine(caps, Gate.Sandbox.Rootfs.RunnerRootfs.Locate(), RunnerLocation.Find(), staged, limits, [], faultsEnabled: false);
        Assert.Equal(["--job", "/job", "--out", "/results"], argv[^4..]);
        var psi = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in argv.Skip(1).Take(argv.Count - 5).Concat(runnerArgs)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3))) { p.Kill(entireProcessTree: true); throw new TimeoutException("runner --bench did not finish in 3 minutes"); }
        p.WaitForExit();
        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}
