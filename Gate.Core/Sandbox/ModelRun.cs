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
    public static readonly string[] Runtimes = ["builtin", "onnxruntime"];

    /// <summary>The limits of a <c>gate run</c> (no policy gives them): a policy's defaults, with the deadline given.</summary>
    public static ResourceLimits LimitsWith(TimeSpan timeout) => new(4L << 30, 2, timeout, 256);
}

/// <summary>The work done inside the sandbox for a <see cref="ModelRunJob"/>; the runner program calls it.</summary>
public static class ModelRunExecutor
{
    public static IReadOnlyDictionary<string, Tensor> Run(OnnxModel model, IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> captures, string runtime)
    {
        switch (runtime)
        {
            case "builtin":
                return CompiledModel.Compile(model).Forward(inputs, null, captures).Values;
            case "onnxruntime":
            {
                if (ProductionRuntime.OnnxRuntimeFactory is null) throw new GateComponentMissingException("ONNX Runtime is not available in this build of Gate");
                using var s = ProductionRuntime.OnnxRuntimeFactory().Load(model, new RuntimeOptions());
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
