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
public sealed record WhiteBoxChoice(string Requested, string Engine, string Reason, double? BuiltinMs = null, double? TorchMs = null, bool FlushDenormals = false);

/// <summary>
/// Chooses the white-box engine for a model (policy <c>engine: auto|builtin|torch</c>). The torch engine is
/// registered by the sandbox runner (<see cref="TorchFactory"/>); elsewhere it is absent, so auto falls back to the
/// built-in engine and an explicit <c>torch</c> makes the white-box checks INCONCLUSIVE with the reason.
/// </summary>
public static class WhiteBoxEngines
{
    public static readonly string[] Modes = ["auto", "builtin", "torch"];

    /// <summary>Set by the runner where libtorch is present: loads a model on the torch engine, or throws
    /// <see cref="GateComponentMissingException"/> (libtorch not loadable) / <see cref="GateInputException"/> (an operator it does not lower).</summary>
    public static Func<OnnxModel, IWhiteBoxEngine>? TorchFactory { get; set; }

    /// <summary>auto keeps the built-in engine unless torch is at least this much faster on the measured pass: for
    /// small models the two are close and the built-in engine is the one the bound propagation shares.</summary>
    public const double AutoSpeedup = 1.5;

    /// <param name="flushDenormals">The built-in engine's subnormal mode (<see cref="CompiledModel.FlushDenormals"/>): on
    /// for the checks; off where a run must show the model's exact IEEE arithmetic (gate run).</param>
    public static (IWhiteBoxEngine Engine, WhiteBoxChoice Choice) Choose(OnnxModel model, string mode, bool flushDenormals = true)
    {
        switch (mode)
        {
            case "builtin":
            {
                var builtin = CompiledModel.Compile(model, flushDenormals);
                return (builtin, new WhiteBoxChoice(mode, "builtin", "engine: builtin", FlushDenormals: builtin.FlushDenormals));
            }
            case "torch":
                if (TorchFactory is null) throw new GateComponentMissingException("engine: torch, but the torch engine exists only inside the sandbox runner (run the checks in a sandbox with the runner's rootfs)");
                return (TorchFactory(model), new WhiteBoxChoice(mode, "torch", "engine: torch", FlushDenormals: true));
            case "auto":
                return Auto(model);
            default:
                throw new GateInputException($"engine: unknown engine '{mode}' (expected {string.Join(", ", Modes)})");
        }
    }

    /// <summary>Whether auto may choose torch at all (see <see cref="Auto"/>).</summary>
    public static readonly bool TorchTrusted = false;

    /// <summary>auto does not even load libtorch (a second or so) for a model whose built-in pass is this quick.</summary>
    public const double AutoSmallModelMs = 5;

    private static (IWhiteBoxEngine, WhiteBoxChoice) Auto(OnnxModel model)
    {
        var builtin = CompiledModel.Compile(model);
        // Until torch is trusted, auto's answer must not depend on a timing or on where the runner is (the decision
        // records the reason, and shards and replays must agree on it), so nothing is measured.
        if (!TorchTrusted)
            return (builtin, new WhiteBoxChoice("auto", "builtin", "auto keeps the built-in engine: the torch engine is an explicit opt-in (engine: torch) until its wider differential set is in (docs/torch-onednn-defect.md)") { FlushDenormals = builtin.FlushDenormals });
        if (TorchFactory is null)
            return (builtin, new WhiteBoxChoice("auto", "builtin", "the torch engine is not available outside the sandbox runner") { FlushDenormals = builtin.FlushDenormals });
        var inputs = ProbeInputs(model);
        if (inputs is null)
            return (builtin, new WhiteBoxChoice("auto", "builtin", "no measurable pass (an input without a static float shape)") { FlushDenormals = builtin.FlushDenormals });
        double tb = Measure(builtin, inputs);
        if (tb < AutoSmallModelMs)
            return (builtin, new WhiteBoxChoice("auto", "builtin", $"one forward + input-gradient pass at batch 1 takes {tb:0.###} ms on the built-in engine (< {AutoSmallModelMs} ms: a small model stays there)", tb) { FlushDenormals = builtin.FlushDenormals });
        IWhiteBoxEngine torch;
        try { torch = TorchFactory(model); }
        catch (Exception e) when (e is GateComponentMissingException or GateInputException)
        {
            return (builtin, new WhiteBoxChoice("auto", "builtin", $"torch engine unavailable for this model: {e.Message}", tb) { FlushDenormals = builtin.FlushDenormals });
        }
        double tt = Measure(torch, inputs);
        // Held back: libtorch's oneDNN convolutions gave wrong input gradients (docs/torch-onednn-defect.md); the torch
        // engine now runs with oneDNN off and matches the built-in engine on the differential set, but that set is
        // small and oneDNN off costs convolution speed, so auto waits for the wider ResNet/ViT differential; a wrong
        // gradient would only weaken an attack, which fails open. engine: torch remains an explicit opt-in.
        bool useTorch = TorchTrusted && tt * AutoSpeedup <= tb;
        var why = $"measured one forward + input-gradient pass at batch 1: builtin {tb:0.###} ms, torch {tt:0.###} ms; " +
                  (useTorch ? $"torch is ≥ {AutoSpeedup}× faster"
                   : !TorchTrusted ? "auto does not choose torch yet (verified on a small differential set only; engine: torch opts in)"
                   : $"torch is not ≥ {AutoSpeedup}× faster, so the built-in engine stays");
        return useTorch
            ? (torch, new WhiteBoxChoice("auto", "torch", why, tb, tt, FlushDenormals: true))
            : (builtin, new WhiteBoxChoice("auto", "builtin", why, tb, tt, builtin.FlushDenormals));
    }

    /// <summary>Zero inputs of each graph input's shape, symbolic dimensions as 1; null when an input is not float.</summary>
    internal static Dictionary<string, Tensor>? ProbeInputs(OnnxModel model)
    {
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var vi in model.Graph.Inputs)
        {
            if (model.Graph.Initializers.TryGetValue(vi.Name, out var init)) { inputs[vi.Name] = init; continue; }
            if (vi.ElementType != DType.Float32 || vi.Shape is null) return null;
            inputs[vi.Name] = Tensor.Zeros(DType.Float32, vi.Shape.Select(d => (int)Math.Max(1, d.Value ?? 1)).ToArray());
        }
        return inputs;
    }

    /// <summary>The faster of two forward + input-gradient passes (the first also warms caches and thread pools).</summary>
    private static double Measure(IWhiteBoxEngine engine, Dictionary<string, Tensor> inputs)
    {
        double best = double.PositiveInfinity;
        var output = engine.OutputNames[0];
        var wrt = engine.InputNames.Where(n => inputs[n].Type == DType.Float32).ToList();
        for (int i = 0; i < 2; i++)
        {
            var sw = Stopwatch.StartNew();
            using var pass = engine.Forward(inputs, [output], recordForBackward: true);
            var y = pass[output];
            if (y.Type == DType.Float32 && wrt.Count > 0)
                engine.Backward(pass, new Dictionary<string, Tensor> { [output] = Tensor.FromFloats(y.Shape, Enumerable.Repeat(1f, y.Length).ToArray()) }, wrt);
            best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
        }
        return best;
    }
}
