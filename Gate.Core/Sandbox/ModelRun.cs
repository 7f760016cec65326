using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Core.Sandbox;

/// <summary>
/// What <c>gate run</c> asks a sandbox to do: run this model (digest-checked inside) on these .npy inputs with
/// this runtime, and return every output plus the captured intermediates. <see cref="Outputs"/>: the model's
/// output names as the host parsed them; with <see cref="Captures"/>, the only names the sandbox may return.
/// </summary>
public sealed record ModelRunJob(
    string ModelPath, string ModelSha256,
    IReadOnlyDictionary<string, string> Inputs,
    IReadOnlyList<string> Captures,
    IReadOnlyList<string> Outputs,
    string Runtime,
    ResourceLimits Limits)
{
    /// <summary>torch: the TorchSharp engine, which exists only inside the sandbox runner.</summary>
    public static readonly string[] Runtimes = ["builtin", "onnxruntime", "torch"];

    /// <summary>Also return each float input's gradient (<see cref="ModelRunExecutor.GradientName"/>) of
    /// <see cref="ModelRunExecutor.GradientSeed"/>·(first output): builtin and torch only.</summary>
    public bool InputGradients { get; init; }

    /// <summary>Every name the sandbox may return for this job.</summary>
    public IEnumerable<string> ReturnableNames => Outputs.Concat(Captures).Concat(InputGradients ? Inputs.Keys.Select(ModelRunExecutor.GradientName) : []);

    /// <summary>The limits of a <c>gate run</c> (no policy gives them): a policy's defaults, with the deadline given.</summary>
    public static ResourceLimits LimitsWith(TimeSpan timeout) => new(4L << 30, 2, timeout, 256);
}

/// <summary>The work done inside the sandbox for a <see cref="ModelRunJob"/>; the runner program calls it.</summary>
public static class ModelRunExecutor
{
    /// <summary>The name an input's gradient is returned under.</summary>
    public static string GradientName(string input) => "grad:" + input;

    /// <summary>
    /// The weights w of the scalar Σ w·y whose gradient is returned: w[i] = ((i mod 7) − 3) / 3 over the first output
    /// in row-major order. Not all ones, because a softmax output sums to a constant and would give zero gradients.
    /// </summary>
    public static Tensor GradientSeed(int[] shape)
    {
        var w = new float[Tensor.ElementCount(shape)];
        for (int i = 0; i < w.Length; i++) w[i] = ((i % 7) - 3) / 3f;
        return Tensor.FromFloats(shape, w);
    }

    public static IReadOnlyDictionary<string, Tensor> Run(OnnxModel model, IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> captures, string runtime,
        bool inputGradients = false)
    {
        if (inputGradients && runtime == "onnxruntime")
            throw new GateInputException("input gradients: ONNX Runtime computes no gradients; use the builtin or torch runtime");
        switch (runtime)
        {
            case "builtin":
            case "torch":
            {
                // IEEE subnormals on the built-in engine too, as for ONNX Runtime below.
                var engine = WhiteBoxEngines.Choose(model, runtime, flushDenormals: false).Engine;
                if (!inputGradients) return engine.Forward(inputs, null, captures).Values;
                using var pass = engine.Forward(inputs, null, captures, recordForBackward: true);
                var values = new Dictionary<string, Tensor>(pass.Values, StringComparer.Ordinal);
                var output = engine.OutputNames[0];
                var wrt = inputs.Where(kv => kv.Value.Type == DType.Float32 && !model.Graph.Initializers.ContainsKey(kv.Key)).Select(kv => kv.Key).ToList();
                foreach (var (name, g) in engine.Backward(pass, new Dictionary<string, Tensor> { [output] = GradientSeed(pass[output].Shape) }, wrt))
                    values[GradientName(name)] = g;
                return values;
            }
            case "onnxruntime":
            {
                if (ProductionRuntime.OnnxRuntimeFactory is null) throw new GateComponentMissingException("ONNX Runtime is not available in this build of Gate");
                // IEEE subnormals, as ONNX specifies them: gate run shows what the model computes (the conformance
                // suite checks it, e.g. casts to float8e8m0, whose smallest value is a float32 subnormal).
                using var s = ProductionRuntime.OnnxRuntimeFactory().Load(model, new RuntimeOptions(FlushDenormals: false));
                return s.Run(inputs, s.OutputNames.Concat(captures).Distinct().ToList());
            }
            default: throw new GateInputException($"unknown runtime '{runtime}' (expected {string.Join(" or ", ModelRunJob.Runtimes)})");
        }
    }

    /// <summary>Tensor names like "/net/net.1/Relu_output_0" become safe file names.</summary>
    public static string SafeName(string name)
    {
        var s = new string(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray()).Trim('_', '.');
        return s.Length == 0 ? "tensor" : s;
    }
}
