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

    /// <summary>
    /// <see cref="Run"/> for values that may also be sequences of tensors or optionals (none: an optional input given
    /// no file, or an optional output that holds nothing). A model whose graph inputs and outputs are all tensors runs
    /// exactly as <see cref="Run"/>. Otherwise ONNX Runtime runs it through its C API; the built-in and torch engines
    /// compute on tensors only, so there a sequence or optional may only pass unchanged through Identity nodes from a
    /// graph input to graph outputs, and the rest of the graph runs on the engine.
    /// </summary>
    public static IReadOnlyDictionary<string, ModelValue> RunValues(OnnxModel model, IReadOnlyDictionary<string, ModelValue> inputs, IReadOnlyList<string> captures, string runtime,
        bool inputGradients = false)
    {
        bool tensors = model.Graph.Inputs.Concat(model.Graph.Outputs).All(v => v.Kind == "tensor") && inputs.Values.All(v => v.Tensor is not null);
        if (tensors)
            return Run(model, inputs.ToDictionary(kv => kv.Key, kv => kv.Value.Tensor!), captures, runtime, inputGradients).ToDictionary(kv => kv.Key, kv => ModelValue.Of(kv.Value));
        if (inputGradients) throw new GateInputException("input gradients: the model has sequence or optional inputs or outputs; gradients are taken on models of tensors only");
        switch (runtime)
        {
            case "onnxruntime":
                if (ProductionRuntime.OnnxRuntimeFactory is null) throw new GateComponentMissingException("ONNX Runtime is not available in this build of Gate");
                return Runtime.OnnxRuntime.OnnxRuntimeInference.RunValues(model, inputs, model.Graph.Outputs.Select(o => o.Name).Concat(captures).Distinct().ToList());
            case "builtin" or "torch": return RunPassingThrough(model, inputs, captures, runtime);
            default: throw new GateInputException($"unknown runtime '{runtime}' (expected {string.Join(" or ", ModelRunJob.Runtimes)})");
        }
    }

    /// <summary>The built-in engines' share of <see cref="RunValues"/>: non-tensor values follow Identity nodes; the
    /// tensor part of the graph (if any) runs on the engine, as a graph without those values and nodes.</summary>
    private static Dictionary<string, ModelValue> RunPassingThrough(OnnxModel model, IReadOnlyDictionary<string, ModelValue> inputs, IReadOnlyList<string> captures, string runtime)
    {
        var g = model.Graph;
        var nonTensorOutputs = g.Outputs.Where(o => o.Kind != "tensor").Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        // Which graph input each non-tensor value is (an Identity of an Identity of … that input).
        var source = g.Inputs.Where(i => i.Kind != "tensor" || inputs.GetValueOrDefault(i.Name) is { Tensor: null })
            .ToDictionary(i => i.Name, i => i.Name, StringComparer.Ordinal);
        var kept = new List<Node>();
        foreach (var n in g.Nodes)
        {
            bool reads = n.Inputs.Any(source.ContainsKey), writes = n.Outputs.Any(nonTensorOutputs.Contains);
            if (!reads && !writes) { kept.Add(n); continue; }
            if (n.OpType != "Identity" || n.Domain is not ("" or "ai.onnx") || n.Inputs.Length != 1 || !source.TryGetValue(n.Inputs[0], out var from))
                throw new GateInputException($"{model.FileName}: node {n.DisplayName} {(reads ? "reads" : "writes")} a sequence or optional value; the {runtime} engine computes " +
                                             "on tensors and passes such values only through Identity unchanged (run it on ONNX Runtime)");
            source[n.Outputs[0]] = from;
        }
        var result = new Dictionary<string, ModelValue>(StringComparer.Ordinal);
        foreach (var o in nonTensorOutputs)
            result[o] = source.TryGetValue(o, out var from) ? inputs.GetValueOrDefault(from) ?? ModelValue.None
                : throw new GateInputException($"{model.FileName}: output '{o}' is a {g.Outputs.First(x => x.Name == o).Type} that no Identity of a graph input gives; the {runtime} engine computes on tensors only");
        var tensorOutputs = g.Outputs.Where(o => !nonTensorOutputs.Contains(o.Name)).ToList();
        if (tensorOutputs.Count == 0 && captures.Count == 0) return result;
        var tensorGraph = new Graph
        {
            Name = g.Name, Inputs = g.Inputs.Where(i => !source.ContainsKey(i.Name)).ToList(), Outputs = tensorOutputs, Initializers = g.Initializers,
            Nodes = kept, ValueInfos = g.ValueInfos, ExternalData = g.ExternalData, SparseInitializers = g.SparseInitializers,
        };
        var tensorModel = new OnnxModel
        {
            SourcePath = model.SourcePath, Sha256 = model.Sha256, SizeBytes = model.SizeBytes, IrVersion = model.IrVersion, Opsets = model.Opsets,
            ProducerName = model.ProducerName, ProducerVersion = model.ProducerVersion, Metadata = model.Metadata, Graph = tensorGraph, Bytes = model.Bytes,
            CustomDomains = model.CustomDomains, LocalFunctions = model.LocalFunctions,
        };
        var tensorInputs = inputs.Where(kv => !source.ContainsKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value.Tensor!);
        foreach (var (name, t) in Run(tensorModel, tensorInputs, captures, runtime)) result[name] = ModelValue.Of(t);
        return result;
    }

    /// <summary>Tensor names like "/net/net.1/Relu_output_0" become safe file names.</summary>
    public static string SafeName(string name)
    {
        var s = new string(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray()).Trim('_', '.');
        return s.Length == 0 ? "tensor" : s;
    }
}
