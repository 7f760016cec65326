using System.Diagnostics;
using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Core.Engine;

/// <summary>Which engine did the white-box work and why: recorded in the decision (runtime.whiteBox).</summary>
/// <param name="Requested">The policy's <c>engine</c>: auto, builtin or torch.</param>
/// <param name="Engine">What ran: builtin or torch.</param>
/// <param name="Reason">Why, in words (auto's measurement, or why torch was not available).</param>
/// <param name="BuiltinMs">auto: one forward + input-gradient pass on the built-in engine, in ms (null when not measured).</param>
/// <param name="TorchMs">auto: the same pass on the torch engine, in ms.</param>
/// <param name="FlushDenormals">Whether subnormal numbers are flushed to zero on the engine that ran.</param>
/// <param name="Device">The torch engine's device ("cpu", "cuda:0"); null for the built-in engine (CPU only).</param>
/// <param name="GpuFallback">Why the torch engine computed on the CPU although a GPU was asked for.</param>
public sealed record WhiteBoxChoice(string Requested, string Engine, string Reason, double? BuiltinMs = null, double? TorchMs = null, bool FlushDenormals = false,
    string? Device = null, string? GpuFallback = null)
{
    /// <summary>How the engine's gradients differ from the model's true derivative, where they do (a QDQ model's
    /// straight-through estimator): every gradient-based check's evidence then says so.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Gradient { get; init; }

    /// <summary>The torch engine's record: its device, and subnormals flushed where it computes on the CPU.</summary>
    internal static WhiteBoxChoice Torch(string requested, IWhiteBoxEngine torch, string reason, double? builtinMs = null, double? torchMs = null) =>
        new(requested, "torch", reason, builtinMs, torchMs, FlushDenormals: torch.Device == TorchDevice.Cpu, Device: torch.Device, GpuFallback: torch.GpuFallback);
}

/// <summary>
/// Chooses the white-box engine for a model (policy <c>engine: auto|builtin|torch</c>). The torch engine is
/// registered by the sandbox runner (<see cref="TorchFactory"/>); elsewhere it is absent, so auto falls back to the
/// built-in engine and an explicit <c>torch</c> makes the white-box checks INCONCLUSIVE with the reason.
/// </summary>
public static class WhiteBoxEngines
{
    public static readonly string[] Modes = ["auto", "builtin", "torch"];

    /// <summary>Set by the runner where libtorch is present: loads a model on the torch engine, or throws
    /// <see cref="GateComponentMissingException"/> (libtorch not loadable) / <see cref="GateInputException"/> (an operator it does not lower).
    /// The <see cref="GpuRequest"/> decides its device (<see cref="TorchDevice"/>).</summary>
    public static Func<OnnxModel, GpuRequest, IWhiteBoxEngine>? TorchFactory { get; set; }

    /// <summary>auto keeps the built-in engine unless torch is at least this much faster on the measured pass: a
    /// margin over timing noise, since the built-in engine is the one the bound propagation shares.</summary>
    public const double AutoSpeedup = 1.2;

    /// <param name="flushDenormals">The built-in engine's subnormal mode (<see cref="CompiledModel.FlushDenormals"/>): on
    /// for the checks; off where a run must show the model's exact IEEE arithmetic (gate run).</param>
    /// <param name="gpu">The policy's GPU request: where the torch engine computes (the built-in engine is CPU only).</param>
    public static (IWhiteBoxEngine Engine, WhiteBoxChoice Choice) Choose(OnnxModel model, string mode, bool flushDenormals = true, GpuRequest? gpu = null)
    {
        gpu ??= GpuRequest.None;
        switch (mode)
        {
            case "builtin":
            {
                var builtin = CompiledModel.Compile(model, flushDenormals);
                return (builtin, new WhiteBoxChoice(mode, "builtin", "engine: builtin", FlushDenormals: builtin.FlushDenormals));
            }
            case "torch":
                if (TorchFactory is null) throw new GateComponentMissingException("engine: torch, but the torch engine exists only inside the sandbox runner (run the checks in a sandbox with the runner's rootfs)");
            {
                var torch = TorchFactory(model, gpu);
                return (torch, WhiteBoxChoice.Torch(mode, torch, "engine: torch"));
            }
            case "auto":
                return Auto(model, flushDenormals, gpu);
            default:
                throw new GateInputException($"engine: unknown engine '{mode}' (expected {string.Join(", ", Modes)})");
        }
    }


    /// <summary>
    /// The operators the torch engine's differential tests run against the built-in engine, input gradients included
    /// (TorchEngineDifferentialTests: every fixture model; TorchEngineGeneratedGraphTests: pools, a ResNet with and
    /// without full oneDNN channel blocks, a ViT; TorchEngineTransformerTests: a ViT as PyTorch exports it at opsets 13
    /// and 17, and the text transformer on int64 token ids). auto considers torch only for a model made of these; the test
    /// <c>The_verified_operators_are_exactly_those_the_differential_tests_run</c> keeps this list equal to that set.
    /// Convolutions need no shape condition here: the torch engine itself switches oneDNN off for any convolution
    /// outside its verified shapes (OneDnn.UnverifiedConvolution), and both of its convolution paths are in the tests.
    /// </summary>
    public static readonly IReadOnlySet<string> TorchVerifiedOperators = new SortedSet<string>(StringComparer.Ordinal)
    {
        "Add", "AveragePool", "BatchNormalization", "Cast", "Concat", "Constant", "ConstantOfShape", "Conv", "Div", "Equal",
        "Erf", "Expand", "Flatten", "Gather", "Gelu", "Gemm", "GlobalAveragePool", "Greater", "Identity", "LayerNormalization",
        "MatMul", "MaxPool", "Mul", "Pow", "ReduceMean", "Relu", "Reshape", "Shape", "Sigmoid", "Slice", "Softmax", "Split",
        "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Where",
    };

    /// <summary>Why auto may not consider torch for this model (operators outside <see cref="TorchVerifiedOperators"/>), or null.</summary>
    public static string? TorchUnverified(OnnxModel model)
    {
        var outside = model.Graph.Nodes.Where(n => !(n.Domain is "" or "ai.onnx") || !TorchVerifiedOperators.Contains(n.OpType))
            .Select(n => n.Domain is "" or "ai.onnx" ? n.OpType : $"{n.Domain}:{n.OpType}").Distinct().Order(StringComparer.Ordinal).ToList();
        return outside.Count == 0 ? null
            : $"operator(s) {string.Join(", ", outside)} are not in the torch engine's differential tests (engine: torch opts in)";
    }

    /// <summary>auto neither measures nor loads libtorch (a second or so) for a model with fewer weights than this: its
    /// built-in pass takes well under a millisecond, and a size, unlike a timing, gives every shard and replay the
    /// same choice and the same recorded reason (the shard-equality tests compare decisions).</summary>
    public const long AutoSmallModelParameters = 100_000;

    /// <summary>
    /// auto: the built-in engine unless torch may be used for this model (runner present, every operator in the
    /// differential tests) and a measured forward + input-gradient pass at <see cref="MeasuredBatch"/> is at least <see cref="AutoSpeedup"/>×
    /// faster on torch. Both timings and the reason go into the decision (runtime.whiteBox). Either engine computes
    /// the same function within the differential tolerances, so a choice that differs between shards or replays (it
    /// depends on the timing) changes how fast the attack runs, not what a gradient is; each result records its own.
    /// </summary>
    private static (IWhiteBoxEngine, WhiteBoxChoice) Auto(OnnxModel model, bool flushDenormals, GpuRequest gpu)
    {
        var builtin = CompiledModel.Compile(model, flushDenormals);
        if (TorchFactory is null)
            return (builtin, new WhiteBoxChoice("auto", "builtin", "the torch engine is not available outside the sandbox runner", FlushDenormals: builtin.FlushDenormals));
        if (TorchUnverified(model) is { } unverified)
            return (builtin, new WhiteBoxChoice("auto", "builtin", $"auto keeps the built-in engine: {unverified}", FlushDenormals: builtin.FlushDenormals));
        long parameters = model.Graph.ParameterCount;
        if (parameters < AutoSmallModelParameters)
            return (builtin, new WhiteBoxChoice("auto", "builtin", $"a small model ({parameters} weights < {AutoSmallModelParameters}) stays on the built-in engine", FlushDenormals: builtin.FlushDenormals));
        var inputs = ProbeInputs(model);
        if (inputs is null)
            return (builtin, new WhiteBoxChoice("auto", "builtin", "no measurable pass (an input without a static float shape)", FlushDenormals: builtin.FlushDenormals));
        double tb = Measure(builtin, inputs);
        IWhiteBoxEngine torch;
        try { torch = TorchFactory(model, gpu); }
        catch (Exception e) when (e is GateComponentMissingException or GateInputException)
        {
            return (builtin, new WhiteBoxChoice("auto", "builtin", $"torch engine unavailable for this model: {e.Message}", tb, FlushDenormals: builtin.FlushDenormals));
        }
        (tb, double tt) = MeasureBoth(builtin, tb, torch, inputs);
        bool useTorch = tt * AutoSpeedup <= tb;
        var batch = inputs.Values.First().Shape is [var b, ..] ? b : 1;
        var why = $"measured forward + input-gradient passes at batch {batch} (fastest of the alternated rounds): builtin {tb:0.###} ms, torch {tt:0.###} ms; " +
                  (useTorch ? $"torch is ≥ {AutoSpeedup}× faster" : $"torch is not ≥ {AutoSpeedup}× faster, so the built-in engine stays");
        return useTorch
            ? (torch, WhiteBoxChoice.Torch("auto", torch, why, tb, tt))
            : (builtin, new WhiteBoxChoice("auto", "builtin", why, tb, tt, builtin.FlushDenormals));
    }

    /// <summary>
    /// The batch a white-box check's gradient passes run at, as the measurements see it: auto's engine choice and the
    /// plan's cost estimate both time passes of this many samples. At batch 1 the engines rank differently from the
    /// batches the checks run (ResNet-18 at 32×32: built-in 50 ms, torch 42 ms at batch 1 — so auto kept the
    /// built-in engine — while at batch 32 the built-in pass took ~3× PyTorch's).
    /// </summary>
    public const int MeasuredBatch = 8;

    /// <summary>
    /// Zero inputs of each graph input's shape: a symbolic first axis (the batch) as <see cref="MeasuredBatch"/>, other
    /// symbolic dimensions as 1 (a batch that some input fixes, for all); null when an input is not float.
    /// </summary>
    internal static Dictionary<string, Tensor>? ProbeInputs(OnnxModel model)
    {
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var data = model.Graph.Inputs.Where(i => !model.Graph.Initializers.ContainsKey(i.Name)).ToList();
        // A batch another input fixes (e.g. at 1) is the batch for all of them.
        int batch = data.Select(i => i.Shape is { Length: > 0 } s ? s[0].Value : null).FirstOrDefault(v => v is not null) is long fixedBatch ? (int)fixedBatch : MeasuredBatch;
        foreach (var vi in model.Graph.Inputs)
        {
            if (model.Graph.Initializers.TryGetValue(vi.Name, out var init)) { inputs[vi.Name] = init; continue; }
            if (vi.ElementType != DType.Float32 || vi.Shape is null) return null;
            inputs[vi.Name] = Tensor.Zeros(DType.Float32, vi.Shape.Select((d, axis) => (int)Math.Max(1, d.Value ?? (axis == 0 ? batch : 1))).ToArray());
        }
        return inputs;
    }

    /// <summary>One forward + input-gradient pass on <paramref name="engine"/>, in ms.</summary>
    private static double TimePass(IWhiteBoxEngine engine, Dictionary<string, Tensor> inputs)
    {
        var output = engine.OutputNames[0];
        var wrt = engine.InputNames.Where(n => inputs[n].Type == DType.Float32).ToList();
        var sw = Stopwatch.StartNew();
        using var pass = engine.Forward(inputs, [output], recordForBackward: true);
        var y = pass[output];
        if (y.Type == DType.Float32 && wrt.Count > 0)
            engine.Backward(pass, new Dictionary<string, Tensor> { [output] = Tensor.FromFloats(y.Shape, Enumerable.Repeat(1f, y.Length).ToArray()) }, wrt);
        return sw.Elapsed.TotalMilliseconds;
    }

    /// <summary>The built-in engine's pass alone: the fastest of two (the first also warms caches and thread pools).</summary>
    private static double Measure(IWhiteBoxEngine engine, Dictionary<string, Tensor> inputs) =>
        Math.Min(TimePass(engine, inputs), TimePass(engine, inputs));

    /// <summary>
    /// Both engines' passes alternated after a warm-up pass of torch (oneDNN creates its kernels on first use): the
    /// fastest of <see cref="AutoRounds"/> each, so a change of machine load during the measurement hits both alike.
    /// </summary>
    private static (double Builtin, double Torch) MeasureBoth(IWhiteBoxEngine builtin, double builtinSoFar, IWhiteBoxEngine torch, Dictionary<string, Tensor> inputs)
    {
        TimePass(torch, inputs);
        double tb = builtinSoFar, tt = double.PositiveInfinity;
        for (int i = 0; i < AutoRounds; i++)
        {
            tt = Math.Min(tt, TimePass(torch, inputs));
            tb = Math.Min(tb, TimePass(builtin, inputs));
        }
        return (tb, tt);
    }

    /// <summary>Alternated timing rounds per engine in auto's measurement.</summary>
    public const int AutoRounds = 3;
}
