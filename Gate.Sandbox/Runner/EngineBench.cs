using System.Diagnostics;
using System.Globalization;
using Gate.Core;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Sandbox;
using Gate.Core.Tensors;

namespace Gate.Sandbox.Runner;

/// <summary>
/// <c>Gate.Sandbox.Runner --bench MODEL --runtime builtin|torch|onnxruntime --batch N --repeat K</c>: times forward
/// passes (and, on builtin/torch, forward + input-gradient passes) of a model on seeded uniform [0, 1) inputs, inside
/// whatever the runner runs in (scripts/bench-torch.sh starts it in the runner's rootfs under bubblewrap, with the
/// sandbox's environment). A benchmark aid only: it judges nothing and writes nothing but one JSON line on stdout.
/// <c>--device cuda:0</c> runs the torch engine on a GPU (the GPU flavour); <c>--device meta</c> runs it on libtorch's
/// meta device, where tensors have shapes and no data: a pass that mixes devices fails there as it would on a GPU,
/// which is how a CPU-only machine checks that every tensor of a pass is on the engine's device (TorchDeviceTests).
/// </summary>
internal static class EngineBench
{
    public static int Run(string[] args)
    {
        string? model = null, runtime = null, device = null;
        int batch = 1, repeat = 5;
        bool profile = false;
        for (int i = 0; i + 1 < args.Length; i += 2)
            switch (args[i])
            {
                case "--bench": model = args[i + 1]; break;
                case "--runtime": runtime = args[i + 1]; break;
                case "--batch": batch = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--repeat": repeat = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--profile": profile = args[i + 1] == "1"; break;
                case "--device": device = args[i + 1]; break;
            }
        if (model is null || runtime is not ("builtin" or "torch" or "onnxruntime") || batch < 1 || repeat < 1 || (device is not null && runtime != "torch"))
        {
            Console.Error.WriteLine("usage: Gate.Sandbox.Runner --bench MODEL.onnx --runtime builtin|torch|onnxruntime [--batch N] [--repeat K] [--profile 1] [--device cpu|cuda:0|meta (torch)]");
            return 2;
        }
        var m = OnnxModelLoader.Load(model);
        var vi = m.Graph.Inputs.Single(i => !m.Graph.Initializers.ContainsKey(i.Name));
        int[] shape = [batch, .. vi.Shape!.Skip(1).Select(d => (int)(d.Value ?? 1))];
        var rng = new Random(20261126);
        var x = Tensor.FromFloats(shape, Enumerable.Range(0, Tensor.ElementCount(shape)).Select(_ => rng.NextSingle()).ToArray());
        var inputs = new Dictionary<string, Tensor> { [vi.Name] = x };

        List<double> forward = [], gradient = [];
        // Σ|y| and Σ|∂(Σ w·y)/∂x| of the last pass: the same model on two devices (cpu, cuda:0) must agree within float32 noise.
        double outputL1 = double.NaN, gradientL1 = double.NaN;
        if (runtime == "onnxruntime")
        {
            using var s = (ProductionRuntime.OnnxRuntimeFactory ?? throw new GateComponentMissingException("ONNX Runtime is not available in this build"))().Load(m, new RuntimeOptions());
            for (int i = 0; i <= repeat; i++) Time(forward, i, () => outputL1 = L1(s.Run(inputs, s.OutputNames)[s.OutputNames[0]]));
        }
        else
        {
            IWhiteBoxEngine engine = device is null ? WhiteBoxEngines.Choose(m, runtime).Engine : Torch.TorchEngine.LoadOn(m, device);
            var output = engine.OutputNames[0];
            for (int i = 0; i <= repeat; i++) Time(forward, i, () => { using var pass = engine.Forward(inputs, [output]); outputL1 = L1(pass[output]); });
            Torch.TorchProfile.Enabled = profile && runtime == "torch";
            for (int i = 0; i <= repeat; i++)
            {
                if (i == 1) Torch.TorchProfile.Reset(); // the warm-up pass is not profiled
                Time(gradient, i, () =>
                {
                    using var pass = engine.Forward(inputs, [output], recordForBackward: true);
                    gradientL1 = L1(engine.Backward(pass, new Dictionary<string, Tensor> { [output] = ModelRunExecutor.GradientSeed(pass[output].Shape) }, [vi.Name])[vi.Name]);
                });
            }
        }
        static string Stats(List<double> t) => t.Count == 0 ? "null"
            : string.Create(CultureInfo.InvariantCulture, $"{{\"min\":{t.Min():0.###},\"median\":{t.Order().ElementAt(t.Count / 2):0.###},\"n\":{t.Count}}}");
        // --profile 1 (torch): per forward + gradient pass, ms by phase and operator type (TorchProfile's counters).
        string profiled = !Torch.TorchProfile.Enabled ? "" : ",\"profileMsPerPass\":{" + string.Join(",", Torch.TorchProfile.Snapshot().Select(p =>
            string.Create(CultureInfo.InvariantCulture, $"\"{p.What}\":{{\"ms\":{p.Ms / repeat:0.###},\"calls\":{p.Count / repeat}}}"))) + "}";
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{{\"model\":\"{Path.GetFileName(model)}\",\"runtime\":\"{runtime}\",\"device\":\"{device ?? "cpu"}\",\"batch\":{batch},\"threads\":{Environment.ProcessorCount},\"nativeHeap\":\"{(runtime == "torch" ? Torch.NativeHeap.State : "n/a")}\",\"forwardMs\":{Stats(forward)},\"forwardGradientMs\":{Stats(gradient)},\"outputL1\":{outputL1:R},\"gradientL1\":{(double.IsNaN(gradientL1) ? "null" : gradientL1.ToString("R", CultureInfo.InvariantCulture))},\"peakRssMiB\":{PeakRssMiB()}{profiled}}}"));
        return 0;
    }

    /// <summary>The process's peak resident memory (VmHWM), in MiB, or -1 where /proc does not say: what a sandbox memory limit is measured against.</summary>
    private static long PeakRssMiB()
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? -1 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        }
        catch (IOException) { return -1; }
    }

    private static double L1(Tensor t) => t.ToFloatArray().Sum(v => Math.Abs((double)v));

    /// <summary>Runs <paramref name="pass"/>; iteration 0 is a warm-up and not recorded.</summary>
    private static void Time(List<double> into, int iteration, Action pass)
    {
        var sw = Stopwatch.StartNew();
        pass();
        if (iteration > 0) into.Add(sw.Elapsed.TotalMilliseconds);
    }
}
