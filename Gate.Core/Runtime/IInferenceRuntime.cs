using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Core.Runtime;

/// <summary>What actually executed a model: recorded in every decision so that evidence names its runtime.</summary>
public sealed record RuntimeInfo(string Name, string Version, string Provider, string Device, string? FallbackReason = null)
{
    /// <summary>Whether this runtime is guaranteed to flush subnormal numbers to zero on every thread that computes
    /// (ONNX Runtime: no — its session.set_denormal_as_zero covers only its own pool threads).</summary>
    public bool? FlushDenormals { get; init; }
    /// <summary>The engine that did the white-box work (gradients, activations) and why; null when no check needed one.</summary>
    public Gate.Core.Engine.WhiteBoxChoice? WhiteBox { get; init; }
}

/// <summary>A loaded model that can be queried. Implementations must be safe to call from several threads.</summary>
public interface IInferenceSession : IDisposable
{
    RuntimeInfo Info { get; }
    IReadOnlyList<string> InputNames { get; }
    IReadOnlyList<string> OutputNames { get; }
    /// <summary>Runs the model; returns the requested outputs (all graph outputs when null).</summary>
    IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string>? outputs = null);
}

/// <summary>A runtime that can load models (the built-in engine, ONNX Runtime).</summary>
public interface IInferenceRuntime
{
    string Name { get; }
    /// <summary>Loads a model; throws <see cref="GateInputException"/> if the runtime rejects it and
    /// <see cref="GateComponentMissingException"/> if the runtime itself is unavailable.</summary>
    IInferenceSession Load(OnnxModel model, RuntimeOptions options);
}

/// <param name="FlushDenormals">Flush subnormals to zero where the runtime can (the checks: 5-20x faster on models with
/// subnormal values); off, a run keeps ONNX's IEEE semantics (gate run, which the conformance suite checks).</param>
public sealed record RuntimeOptions(bool UseGpu = false, bool RequireGpu = false, int IntraOpThreads = 0, bool FlushDenormals = true);

public static class InferenceSessionExtensions
{
    /// <summary>Runs a single-input model on one tensor and returns its first (or named) output.</summary>
    public static Tensor RunSingle(this IInferenceSession s, Tensor input, string? output = null)
    {
        var name = output ?? s.OutputNames[0];
        return s.Run(new Dictionary<string, Tensor> { [s.InputNames[0]] = input }, [name])[name];
    }
}
