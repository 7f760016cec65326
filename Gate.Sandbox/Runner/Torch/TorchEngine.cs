using System.Runtime.InteropServices;
using Gate.Core;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using TorchSharp;
using GTensor = Gate.Core.Tensors.Tensor;
using DType = Gate.Core.Tensors.DType;
using TTensor = TorchSharp.torch.Tensor;
using static TorchSharp.torch;

namespace Gate.Sandbox.Runner.Torch;

/// <summary>
/// The engine's IR (an <see cref="OnnxModel"/>'s graph, as the built-in engine runs it) lowered node by node to
/// TorchSharp operations, with libtorch's autograd for input gradients. Lives in the runner only: libtorch needs
/// GLIBCXX_3.4.32, which the runner's Debian 13 root filesystem has and a Debian 12 host does not, and the model
/// only ever executes in the sandbox. Operators without a lowering are refused up front, by name (<see cref="Load"/>).
/// Thread-safe like <see cref="CompiledModel"/>: every pass keeps its tensors to itself.
/// </summary>
internal sealed class TorchEngine : IWhiteBoxEngine
{
    private readonly OnnxModel _model;
    private readonly long _opset;
    /// <summary>The initializers as libtorch tensors, converted once; never part of a pass's dispose scope.</summary>
    private readonly Dictionary<string, TTensor> _weights = new(StringComparer.Ordinal);
    private readonly HashSet<string> _produced = new(StringComparer.Ordinal);
    /// <summary>Where every tensor of a pass lives; data crosses to the host only at the pass's edges.</summary>
    private readonly torch.Device _device;
    private readonly bool _onCpu;

    public string Name => "torch";
    public string Device { get; }
    public string? GpuFallback { get; }
    public IReadOnlyList<string> InputNames { get; }
    public IReadOnlyList<string> OutputNames { get; }

    private TorchEngine(OnnxModel model, string device, string? gpuFallback)
    {
        _model = model;
        Device = device;
        GpuFallback = gpuFallback;
        _device = torch.device(device);
        _onCpu = _device.type == DeviceType.CPU;
        _opset = model.DefaultOpset;
        InputNames = model.Graph.Inputs.Select(i => i.Name).ToList();
        OutputNames = model.Graph.Outputs.Select(o => o.Name).ToList();
        foreach (var n in model.Graph.Nodes) foreach (var o in n.Outputs) if (o.Length > 0) _produced.Add(o);
        foreach (var (name, t) in model.Graph.Initializers)
        {
            using var scope = torch.NewDisposeScope();
            _weights[name] = OnDevice(ToTorch(t)).MoveToOuterDisposeScope().DetachFromDisposeScope();
        }
        if (_onCpu && ChannelsLast.Enabled && OneDnn.Enabled)
            foreach (var n in model.Graph.Nodes.Where(n => n.OpType == "Conv" && n.Inputs.Length > 1))
                if (_weights.TryGetValue(n.Inputs[1], out var w) && w.dim() == 4)
                    _weights[n.Inputs[1]] = ChannelsLast.Of(w).DetachFromDisposeScope();
    }

    /// <summary>
    /// Null when libtorch loads in this process, otherwise why not (a Debian 12 host: GLIBCXX_3.4.32 missing). On the
    /// first success it also fits libtorch's threads to the CPUs this process may use and flushes subnormals.
    /// </summary>
    public static string? WhyUnavailable() => Availability.Value;

    private static readonly Lazy<string?> Availability = new(() =>
    {
        try
        {
            OpenMpWait.Passive();
            NativeHeap.KeepLargeBlocks();
            // .NET's processor count already honours the container's CPU quota (cgroup) and DOTNET_PROCESSOR_COUNT,
            // which the bubblewrap backend sets from the policy's cpus; libtorch's own default counts host cores.
            torch.set_num_threads(Math.Max(1, Environment.ProcessorCount));
            torch.set_num_interop_threads(1);
            Nnpack.Disable();
            Denormals.FlushOnThisThread();
            return null;
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or NotSupportedException or EntryPointNotFoundException or InvalidOperationException)
        {
            var inner = e;
            while (inner.InnerException is not null) inner = inner.InnerException;
            return $"libtorch does not load in this process ({inner.GetType().Name}: {FirstLine(inner.Message)})";
        }
    });

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();

    /// <summary>The operators this engine lowers (the others are refused before anything runs).</summary>
    public static IEnumerable<string> SupportedOperators => TorchLowering.Operators;

    /// <summary>Binds a model; throws <see cref="GateInputException"/> naming every operator it cannot lower, and
    /// <see cref="GateComponentMissingException"/> when libtorch is not available here.</summary>
    public static TorchEngine Load(OnnxModel model, GpuRequest gpu)
    {
        Validate(model);
        int cuda = torch.cuda.is_available() ? torch.cuda.device_count() : 0;
        var (device, fallback) = TorchDevice.Choose(gpu, cuda);
        return new TorchEngine(model, device, fallback);
    }

    /// <summary>On a named libtorch device ("cpu", "cuda:0", "meta"): the runner's --bench aid and its device check.</summary>
    internal static TorchEngine LoadOn(OnnxModel model, string device)
    {
        Validate(model);
        return new TorchEngine(model, device, null);
    }

    private static void Validate(OnnxModel model)
    {
        var missing = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var n in model.Graph.Nodes)
            if (!(n.Domain is "" or "ai.onnx") || !TorchLowering.Supports(n.OpType))
                missing.Add(n.Domain is "" or "ai.onnx" ? n.OpType : $"{n.Domain}:{n.OpType}");
        if (missing.Count > 0)
            throw new GateInputException($"{model.FileName}: the torch engine does not lower operator(s) {string.Join(", ", missing)}; use engine: builtin");
        foreach (var vi in model.Graph.Inputs.Concat(model.Graph.Outputs))
            if (vi.Kind != "tensor")
                throw new GateInputException($"{model.FileName}: graph value '{vi.Name}' is a {vi.Kind}; the torch engine computes on tensors only");
        if (WhyUnavailable() is { } why) throw new GateComponentMissingException($"torch engine: {why}");
        // Off for good once any model of this process has a convolution outside the shapes oneDNN was verified on.
        if (OneDnn.UnverifiedConvolution(model) is not null) OneDnn.Disable();
    }

    /// <summary>A tensor on this engine's device (the same tensor on the CPU).</summary>
    private TTensor OnDevice(TTensor t) => _onCpu || t.device_type == _device.type ? t : t.to(_device);

    public ForwardPass Forward(IReadOnlyDictionary<string, GTensor> inputs, IEnumerable<string>? outputs = null,
        IEnumerable<string>? capture = null, bool recordForBackward = false)
    {
        var wanted = new List<string>(outputs ?? OutputNames);
        if (capture is not null) wanted.AddRange(capture.Where(c => !wanted.Contains(c)));
        foreach (var w in wanted)
            if (!_produced.Contains(w) && !_weights.ContainsKey(w) && !InputNames.Contains(w))
                throw new GateInputException($"{_model.FileName}: no tensor named '{w}' in the graph");
        foreach (var k in inputs.Keys)
            if (!InputNames.Contains(k) && !_weights.ContainsKey(k))
                throw new GateInputException($"{_model.FileName}: the model has no input named '{k}' (inputs: {string.Join(", ", InputNames)})");

        Denormals.FlushOnThisThread();
        var scope = torch.NewDisposeScope();
        var tape = new Tape(scope);
        try
        {
            using var grad = recordForBackward ? null : torch.no_grad();
            var values = new Dictionary<string, TTensor>(_weights, StringComparer.Ordinal);
            foreach (var name in InputNames)
            {
                if (!inputs.TryGetValue(name, out var t))
                {
                    var vi = _model.Graph.Inputs.First(i => i.Name == name);
                    throw new GateInputException($"{_model.FileName}: missing input '{name}' (expected {vi.ElementType.OnnxName()}{vi.ShapeString})");
                }
                var copyIn = TorchProfile.Start();
                var x = OnDevice(ToTorch(t));
                TorchProfile.Stop("copy in (inputs)", copyIn);
                if (recordForBackward && x.is_floating_point()) x = x.requires_grad_(true);
                values[name] = x;
                tape.Leaves[name] = x;
            }
            foreach (var (k, t) in inputs)
                if (_weights.ContainsKey(k)) values[k] = OnDevice(ToTorch(t)); // an overridden initializer

            foreach (var node in _model.Graph.Nodes)
            {
                var args = node.Inputs.Select(n => n.Length == 0 ? null : values.TryGetValue(n, out var v) ? v
                    : throw new InvalidOperationException($"{node.DisplayName}: input '{n}' is not available (engine bug)")).ToArray();
                TTensor[] res;
                var op = TorchProfile.Start();
                try { res = TorchLowering.Run(node, _opset, args); }
                catch (ExternalException e) { throw new OperatorException($"{node.DisplayName}: libtorch refused it: {FirstLine(e.Message)}"); }
                TorchProfile.Stop(recordForBackward ? "forward (recorded) " + node.OpType : "forward " + node.OpType, op);
                // Lowerings that create tensors (Constant, Shape, Range, ConstantOfShape) create them on the host.
                for (int j = 0; j < node.Outputs.Length && j < res.Length; j++)
                    if (node.Outputs[j].Length > 0) values[node.Outputs[j]] = OnDevice(res[j]);
            }
            var result = new Dictionary<string, GTensor>(StringComparer.Ordinal);
            var copyOut = TorchProfile.Start();
            foreach (var w in wanted)
            {
                result[w] = FromTorch(values[w], DeclaredType(w));
                if (recordForBackward) tape.Outputs[w] = values[w];
            }
            TorchProfile.Stop("copy out (outputs)", copyOut);
            if (!recordForBackward) { scope.Dispose(); return new ForwardPass { Values = result }; }
            return new ForwardPass { Values = result, EngineTape = tape };
        }
        catch
        {
            scope.Dispose();
            throw;
        }
    }

    public IReadOnlyDictionary<string, GTensor> Backward(ForwardPass pass, IReadOnlyDictionary<string, GTensor> outputGrads, IEnumerable<string> wrt)
    {
        if (pass.EngineTape is not Tape tape) throw new InvalidOperationException("Forward was not run with recordForBackward: true (on the torch engine)");
        if (tape.Disposed) throw new ObjectDisposedException(nameof(ForwardPass), "the forward pass was disposed: its tape is gone");
        var wrtList = wrt.ToList();
        foreach (var w in wrtList)
            if (!tape.Leaves.ContainsKey(w))
                throw new GateInputException(_weights.ContainsKey(w)
                    ? $"the torch engine differentiates with respect to graph inputs only, not the initializer '{w}' (use engine: builtin)"
                    : $"no tensor named '{w}' to differentiate with respect to");
        Denormals.FlushOnThisThread();
        using var scope = torch.NewDisposeScope();
        var outs = new List<TTensor>();
        var seeds = new List<TTensor>();
        foreach (var (name, seed) in outputGrads)
        {
            if (!tape.Outputs.TryGetValue(name, out var y))
                throw new InvalidOperationException($"'{name}' was not an output of the recorded pass, so it cannot be seeded");
            if (!y.requires_grad) continue; // does not depend on any input: contributes nothing
            outs.Add(y);
            var copySeed = TorchProfile.Start();
            seeds.Add(OnDevice(ToTorch(seed).to_type(y.dtype)));
            TorchProfile.Stop("copy in (gradient seeds)", copySeed);
        }
        var leaves = wrtList.Select(w => tape.Leaves[w]).ToList();
        var result = new Dictionary<string, GTensor>(StringComparer.Ordinal);
        if (outs.Count == 0 || leaves.Any(l => !l.requires_grad))
        {
            foreach (var w in wrtList) result[w] = GTensor.Zeros(DType.Float32, tape.Leaves[w].shape.Select(d => (int)d).ToArray());
            if (outs.Count == 0) return result;
        }
        var diff = wrtList.Where(w => tape.Leaves[w].requires_grad).ToList();
        // retain_graph: a pass may be asked for gradients more than once (different seeds); it is freed with the pass.
        var backward = TorchProfile.Start();
        var grads = torch.autograd.grad(outs, diff.Select(w => tape.Leaves[w]).ToList(), seeds, retain_graph: true, allow_unused: true);
        TorchProfile.Stop("backward (autograd)", backward);
        var copyGrad = TorchProfile.Start();
        for (int i = 0; i < diff.Count; i++)
            result[diff[i]] = grads[i] is { } g && !g.IsInvalid ? FromTorch(g, DType.Float32)
                : GTensor.Zeros(DType.Float32, tape.Leaves[diff[i]].shape.Select(d => (int)d).ToArray());
        TorchProfile.Stop("copy out (gradients)", copyGrad);
        return result;
    }

    private DType DeclaredType(string name) =>
        _model.Graph.Outputs.FirstOrDefault(o => o.Name == name)?.ElementType
        ?? (_model.Graph.ValueInfos.TryGetValue(name, out var vi) ? vi.ElementType : DType.Undefined);

    /// <summary>A recorded pass's autograd graph and the tensors it needs, released together with the pass.</summary>
    private sealed class Tape(DisposeScope scope) : IDisposable
    {
        public readonly Dictionary<string, TTensor> Leaves = new(StringComparer.Ordinal);
        public readonly Dictionary<string, TTensor> Outputs = new(StringComparer.Ordinal);
        public bool Disposed { get; private set; }
        public void Dispose() { if (!Disposed) { Disposed = true; scope.Dispose(); } }
    }

    /// <summary>
    /// A libtorch tensor with its own copy of the data: allocated by libtorch and filled from the managed array, so it
    /// never views managed memory that the GC may move (a view made gradients read stale weights, now and then).
    /// </summary>
    internal static TTensor ToTorch(GTensor t)
    {
        var dims = t.Shape.Select(d => (long)d).ToArray();
        if (t.Floats is { } f) return Filled(dims, ScalarType.Float32, MemoryMarshal.AsBytes(f.AsSpan()));
        if (t.Doubles is { } d) return Filled(dims, ScalarType.Float64, MemoryMarshal.AsBytes(d.AsSpan()));
        if (t.Longs is { } l)
            return t.Type == DType.Bool
                ? Filled(dims, ScalarType.Int64, MemoryMarshal.AsBytes(l.AsSpan())).to_type(ScalarType.Bool)
                : Filled(dims, ScalarType.Int64, MemoryMarshal.AsBytes(l.AsSpan()));
        throw new GateInputException($"the torch engine cannot take a {t.Type.OnnxName()} tensor");
    }

    private static TTensor Filled(long[] dims, ScalarType type, ReadOnlySpan<byte> data)
    {
        var t = torch.empty(dims, type);
        data.CopyTo(t.bytes); // the getter spans libtorch's own buffer; copying into it leaves nothing managed behind
        return t;
    }

    internal static GTensor FromTorch(TTensor t, DType declared)
    {
        using var scope = torch.NewDisposeScope();
        var shape = t.shape.Select(d => (int)d).ToArray();
        // The meta device (the device check of EngineBench) has shapes and no data: zeros of the shape.
        if (t.device_type == DeviceType.META)
            return t.is_floating_point() ? GTensor.Zeros(DType.Float32, shape) : GTensor.FromLongs(shape, new long[GTensor.ElementCount(shape)]);
        var c = t.detach().cpu().contiguous();
        switch (c.dtype)
        {
            case ScalarType.Float32:
                return GTensor.FromFloats(shape, c.data<float>().ToArray());
            case ScalarType.Float64:
                return declared == DType.Float32 ? GTensor.FromFloats(shape, c.to_type(ScalarType.Float32).data<float>().ToArray()) : GTensor.FromDoubles(shape, c.data<double>().ToArray());
            case ScalarType.Bool:
                return GTensor.FromLongs(shape, c.data<bool>().ToArray().Select(b => b ? 1L : 0L).ToArray(), DType.Bool);
            default:
            {
                var type = declared is DType.Undefined || !declared.IsInteger() ? DType.Int64 : declared;
                return GTensor.FromLongs(shape, c.to_type(ScalarType.Int64).data<long>().ToArray(), type);
            }
        }
    }
}

/// <summary>
/// Where a torch engine pass spends its time, by phase and operator type (Stopwatch counters, libtorch on the CPU is
/// synchronous). Off unless GATE_TORCH_PROFILE=1 or the runner's --bench --profile switches it on: then Start/Stop
/// cost two timestamp reads per node, otherwise one branch.
/// </summary>
internal static class TorchProfile
{
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("GATE_TORCH_PROFILE") == "1";
    private static readonly Dictionary<string, (long Ticks, long Count)> Totals = new(StringComparer.Ordinal);

    public static long Start() => Enabled ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;

    public static void Stop(string what, long start)
    {
        if (!Enabled) return;
        long ticks = System.Diagnostics.Stopwatch.GetTimestamp() - start;
        lock (Totals) Totals[what] = Totals.TryGetValue(what, out var t) ? (t.Ticks + ticks, t.Count + 1) : (ticks, 1);
    }

    public static void Reset() { lock (Totals) Totals.Clear(); }

    /// <summary>Milliseconds and call counts per counter, largest first.</summary>
    public static IReadOnlyList<(string What, double Ms, long Count)> Snapshot()
    {
        lock (Totals)
            return Totals.Select(kv => (kv.Key, kv.Value.Ticks * 1000.0 / System.Diagnostics.Stopwatch.Frequency, kv.Value.Count))
                .OrderByDescending(t => t.Item2).ToList();
    }
}

/// <summary>
/// libtorch 2.10's oneDNN (3.7.1) convolutions are switched off (at::globalContext().setUserEnabledMkldnn(false), which
/// TorchSharp does not bind) for any model with a convolution outside the verified shapes (<see cref="UnverifiedConvolution"/>);
/// ATen's own im2col + GEMM convolutions run instead, 1.8× (batch 32, ResNet-18: several times) slower. On this project's hosts oneDNN's
/// jit:avx512_core (and jit:avx2) backward_data kernel returns wrong input gradients whenever the batch is 2 or more and
/// the output channels are not a multiple of its SIMD block (16 on AVX-512, 8 on AVX2): in a sweep of 720 conv2d shapes
/// 96–110 were wrong by up to 2.3 with one thread, forward outputs always right; with oneDNN off none were
/// (docs/torch-onednn-defect.md has the reproduction). Gradients are what the engine is for, so it is off for all.
/// </summary>
internal static partial class OneDnn
{
    [LibraryImport("libtorch_cpu", EntryPoint = "_ZN2at13globalContextEv")]
    private static partial IntPtr GlobalContext();

    [LibraryImport("libtorch_cpu", EntryPoint = "_ZN2at7Context20setUserEnabledMkldnnEb")]
    private static partial void SetUserEnabledMkldnn(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool on);

    [LibraryImport("libtorch_cpu", EntryPoint = "_ZNK2at7Context17userEnabledMkldnnEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static partial bool UserEnabledMkldnn(IntPtr context);

    /// <summary>
    /// The first convolution of <paramref name="model"/> that oneDNN's input gradient is not trusted on, or null. Trusted:
    /// 2-D, one group, no dilation, a weight initializer whose output channels are a multiple of 16 (the AVX-512 block;
    /// AVX2's 8 divides it). Every wrong shape of the sweep had output channels off that block; multiples of 16 are
    /// checked against the built-in engine by TorchEngineGeneratedGraphTests.ResNet_like_graph_with_full_channel_blocks
    /// (16 and 32 channels, stride 2, 1×1 projection, batch 4).
    /// </summary>
    public static string? UnverifiedConvolution(OnnxModel model)
    {
        foreach (var n in model.Graph.Nodes.Where(n => n.OpType == "Conv"))
        {
            bool trusted = n.Inputs.Length > 1 && model.Graph.Initializers.TryGetValue(n.Inputs[1], out var w)
                && w.Shape.Length == 4 && w.Shape[0] % 16 == 0 && n.GetInt("group", 1) == 1
                && (n.GetInts("dilations") ?? []).All(d => d == 1);
            if (!trusted) return n.DisplayName;
        }
        return null;
    }

    /// <summary>Process-wide (a global flag of libtorch's context, read at every convolution).</summary>
    public static void Disable()
    {
        var context = GlobalContext();
        SetUserEnabledMkldnn(context, false);
        if (UserEnabledMkldnn(context)) throw new InvalidOperationException("libtorch kept oneDNN enabled; its convolution gradients are wrong on this CPU");
    }

    /// <summary>Whether libtorch would use oneDNN now (false once <see cref="Disable"/> ran).</summary>
    public static bool Enabled => UserEnabledMkldnn(GlobalContext());
}

/// <summary>
/// libtorch's OpenMP (libgomp) threads sleep between parallel regions instead of spinning (OMP_WAIT_POLICY=PASSIVE,
/// unless the environment already says otherwise). libgomp sizes its spinning from the host's CPU count, not the
/// sandbox's quota, so on a shared or throttled host a spinning thread burns the time slices its partner needs: on
/// this project's 2-CPU host under load, a batch-1 ResNet-18 forward took 3–4× longer with two threads than with one,
/// and as long as one with PASSIVE (docs/benchmarks/torch.md; Debian's PyTorch behaves the same). libgomp reads the
/// variable once, when libtorch is loaded, so it is set in the native environment before the first libtorch call
/// (.NET's Environment.SetEnvironmentVariable does not reach native code on Linux).
/// </summary>
internal static partial class OpenMpWait
{
    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    public static void Passive() => SetEnv("OMP_WAIT_POLICY", "PASSIVE", 0);
}

/// <summary>
/// glibc's allocator keeps freed tensor memory for reuse instead of handing it back to the kernel after every pass.
/// By default blocks above a dynamic threshold (at most 32 MiB) are mmap'ed and munmap'ed one by one, and the heap's
/// free top is trimmed past 128 KiB: a ResNet-18 batch's activations and their gradients (8–100 MiB each) were then
/// mapped, zero-filled page by page by the kernel, and unmapped again at every gradient step. Raising both
/// thresholds makes a step reuse the previous step's pages. Cost: the process keeps its peak heap until it exits
/// (the sandbox's memory limit still bounds it). GATE_TORCH_KEEP_HEAP=0 leaves glibc's defaults (for measuring).
/// </summary>
internal static partial class NativeHeap
{
    private const int MallocTrimThreshold = -1, MallocMmapThreshold = -3; // glibc's M_TRIM_THRESHOLD, M_MMAP_THRESHOLD

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int MallOpt(int parameter, int value);

    /// <summary>What was asked of glibc: "kept" (both thresholds raised), "default" (switched off), or which one glibc refused.</summary>
    public static string State { get; private set; } = "not set";

    public static void KeepLargeBlocks()
    {
        if (Environment.GetEnvironmentVariable("GATE_TORCH_KEEP_HEAP") == "0") { State = "default"; return; }
        bool mmap = MallOpt(MallocMmapThreshold, 1 << 30) == 1;  // blocks up to 1 GiB come from the heap
        bool trim = MallOpt(MallocTrimThreshold, int.MaxValue) == 1; // and its free top is not returned after each pass
        State = mmap && trim ? "kept" : $"glibc refused {(mmap ? "" : "M_MMAP_THRESHOLD ")}{(trim ? "" : "M_TRIM_THRESHOLD")}".Trim();
    }
}

/// <summary>
/// libtorch's NNPACK convolutions are switched off (at::globalContext().setUserEnabledNNPACK(false), which TorchSharp
/// does not bind). With oneDNN off, ATen asks NNPACK first for every eligible convolution; NNPACK does not initialise
/// on these CPUs ("Unsupported hardware"), and libtorch 2.10 retries the initialisation and logs a warning on stderr
/// at every such call: the torch engine spent most of a batch-1 ResNet-18 pass there (docs/benchmarks/torch.md).
/// </summary>
internal static partial class Nnpack
{
    [LibraryImport("libtorch_cpu", EntryPoint = "_ZN2at13globalContextEv")]
    private static partial IntPtr GlobalContext();

    [LibraryImport("libtorch_cpu", EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
    private static partial void SetUserEnabledNnpack(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool on);

    [LibraryImport("libtorch_cpu", EntryPoint = "_ZNK2at7Context17userEnabledNNPACKEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static partial bool UserEnabledNnpack(IntPtr context);

    /// <summary>Process-wide (a global flag of libtorch's context, read at every convolution).</summary>
    public static void Disable()
    {
        var context = GlobalContext();
        SetUserEnabledNnpack(context, false);
        if (UserEnabledNnpack(context)) throw new InvalidOperationException("libtorch kept NNPACK enabled");
    }

    /// <summary>Whether libtorch would try NNPACK now (false once <see cref="Disable"/> ran).</summary>
    public static bool Enabled => UserEnabledNnpack(GlobalContext());
}

/// <summary>
/// Flush-to-zero and denormals-are-zero for libtorch's kernels (at::globalContext().setFlushDenormal, which
/// TorchSharp does not bind). The x86 MXCSR bits it sets are per thread and inherited by threads created later
/// (libtorch's OpenMP pool is started by a thread that already has them), so every thread that calls into
/// libtorch sets them first. Subnormals cost 5–20× per operation on these CPUs (docs/benchmarks).
/// </summary>
internal static partial class Denormals
{
    // A static member (its code reads `on` from the first argument register): no context pointer is passed, or the
    // pointer's low byte would be read as `on`.
    [LibraryImport("libtorch_cpu", EntryPoint = "_ZN2at7Context16setFlushDenormalEb")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static partial bool SetFlushDenormal([MarshalAs(UnmanagedType.U1)] bool on);

    [ThreadStatic] private static bool _done;

    /// <summary>True when this CPU supports it (x86 with SSE3 DAZ); set once per thread.</summary>
    public static bool Supported { get; private set; }

    public static void FlushOnThisThread()
    {
        if (_done) return;
        Supported = SetFlushDenormal(true);
        _done = true;
    }
}
