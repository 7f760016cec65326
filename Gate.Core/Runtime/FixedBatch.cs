using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Core.Runtime;

/// <summary>
/// Models exported with their batch dimension fixed at 1 (e.g. both MNIST CNNs in ONNX Runtime's test data: input
/// [1,1,28,28], a Reshape to [1,256] inside). Gate's data checks feed batches; such a model is run one sample at a
/// time instead, and the plan says so (<see cref="Note"/>), rather than every data check ending INCONCLUSIVE on a
/// shape error.
/// </summary>
public static class FixedBatch
{
    /// <summary>True when some data input of the model declares its first dimension as exactly 1.</summary>
    public static bool IsFixedAtOne(OnnxModel model) =>
        model.Graph.Inputs.Where(i => !model.Graph.Initializers.ContainsKey(i.Name))
            .Any(i => i.Shape is { Length: > 0 } s && s[0].Value == 1);

    /// <summary>The plan's note for such a model, or null.</summary>
    public static string? Note(OnnxModel model) => IsFixedAtOne(model)
        ? $"{model.FileName}: the batch dimension is fixed at 1 ({string.Join(", ", model.Graph.Inputs.Where(i => i.Shape is { Length: > 0 } s && s[0].Value == 1).Select(i => $"{i.Name} {i.ShapeString}"))}); " +
          "data checks run it one sample at a time, gradient searches (adversarial, trojan-scan) included"
        : null;

    /// <summary>The batch size to feed: 1 for such a model, else <paramref name="preferred"/>.</summary>
    public static int BatchFor(OnnxModel model, int preferred) => IsFixedAtOne(model) ? 1 : preferred;

    /// <summary>Wraps a session so that a batch of n samples runs as n single-sample runs whose outputs are stacked.</summary>
    public static IInferenceSession SampleBySample(IInferenceSession inner) => new SampleSession(inner);

    /// <summary>
    /// Wraps a white-box engine the same way: a forward pass over n samples is n single-sample passes (their tapes
    /// kept together), and a backward pass runs on each tape with its sample's slice of the seed. Gradient searches
    /// (PGD, trojan-scan's trigger optimisation) thus run on such a model, one sample per pass.
    /// </summary>
    public static IWhiteBoxEngine SampleBySample(IWhiteBoxEngine inner) => new SampleEngine(inner);

    /// <summary>The common batch size of the inputs when it exceeds 1 (else null: the inner model is run as it is).</summary>
    private static int? SplitSize(IReadOnlyDictionary<string, Tensor> inputs)
    {
        var batches = inputs.Values.Where(t => t.Rank > 0).Select(t => t.Shape[0]).Distinct().ToList();
        return batches.Count == 1 && batches[0] > 1 ? batches[0] : null;
    }

    private static IReadOnlyDictionary<string, Tensor> Sample(IReadOnlyDictionary<string, Tensor> inputs, int i) =>
        inputs.ToDictionary(kv => kv.Key, kv => kv.Value.Rank > 0 ? kv.Value.SliceBatch(i, 1) : kv.Value, StringComparer.Ordinal);

    private static Dictionary<string, Tensor> StackAll(IReadOnlyList<IReadOnlyDictionary<string, Tensor>> parts) =>
        parts[0].Keys.ToDictionary(name => name, name => Stack(name, parts.Select(p => p[name]).ToList()), StringComparer.Ordinal);

    private sealed class SampleSession(IInferenceSession inner) : IInferenceSession
    {
        public RuntimeInfo Info => inner.Info;
        public IReadOnlyList<string> InputNames => inner.InputNames;
        public IReadOnlyList<string> OutputNames => inner.OutputNames;

        public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string>? outputs = null)
        {
            if (SplitSize(inputs) is not int n) return inner.Run(inputs, outputs);
            var parts = new List<IReadOnlyDictionary<string, Tensor>>(n);
            for (int i = 0; i < n; i++) parts.Add(inner.Run(Sample(inputs, i), outputs));
            return StackAll(parts);
        }

        public void Dispose() => inner.Dispose();
    }

    /// <summary>The single-sample passes behind one stacked pass: released with it.</summary>
    private sealed class SampleTapes(List<ForwardPass> passes) : IDisposable
    {
        public List<ForwardPass> Passes { get; } = passes;
        public void Dispose() { foreach (var p in Passes) p.Dispose(); }
    }

    private sealed class SampleEngine(IWhiteBoxEngine inner) : IWhiteBoxEngine
    {
        public string Name => inner.Name;
        public IReadOnlyList<string> InputNames => inner.InputNames;
        public IReadOnlyList<string> OutputNames => inner.OutputNames;

        public ForwardPass Forward(IReadOnlyDictionary<string, Tensor> inputs, IEnumerable<string>? outputs = null,
            IEnumerable<string>? capture = null, bool recordForBackward = false)
        {
            if (SplitSize(inputs) is not int n) return inner.Forward(inputs, outputs, capture, recordForBackward);
            var outs = outputs?.ToList();
            var caps = capture?.ToList();
            var passes = new List<ForwardPass>(n);
            try
            {
                for (int i = 0; i < n; i++) passes.Add(inner.Forward(Sample(inputs, i), outs, caps, recordForBackward));
                var values = StackAll(passes.Select(p => p.Values).ToList()); // copies: the passes' buffers may be pooled
                if (recordForBackward) return new ForwardPass { Values = values, EngineTape = new SampleTapes(passes) };
                foreach (var p in passes) p.Dispose();
                return new ForwardPass { Values = values };
            }
            catch
            {
                foreach (var p in passes) p.Dispose();
                throw;
            }
        }

        public IReadOnlyDictionary<string, Tensor> Backward(ForwardPass pass, IReadOnlyDictionary<string, Tensor> outputGrads, IEnumerable<string> wrt)
        {
            if (pass.EngineTape is not SampleTapes tapes) return inner.Backward(pass, outputGrads, wrt);
            var names = wrt.ToList();
            var parts = new List<IReadOnlyDictionary<string, Tensor>>(tapes.Passes.Count);
            for (int i = 0; i < tapes.Passes.Count; i++)
                parts.Add(inner.Backward(tapes.Passes[i], Sample(outputGrads, i), names));
            // A gradient with respect to an input is per sample (stacked); with respect to a weight it is the sum over samples.
            return names.ToDictionary(name => name, name => inner.InputNames.Contains(name)
                ? Stack(name, parts.Select(p => p[name]).ToList())
                : parts.Select(p => p[name]).Aggregate(Kernels.AddSameShape), StringComparer.Ordinal);
        }
    }

    /// <summary>Concatenates single-sample outputs along axis 0; an output without that batch axis cannot be stacked.</summary>
    private static Tensor Stack(string name, List<Tensor> parts)
    {
        var first = parts[0];
        if (first.Rank == 0 || first.Shape[0] != 1 || parts.Any(p => !p.Shape.SequenceEqual(first.Shape)))
            throw new GateInputException($"output '{name}' of a model with its batch fixed at 1 has shape {first.ShapeString}, not [1, ...]; " +
                                         "its per-sample outputs cannot be stacked into a batch");
        var shape = (int[])first.Shape.Clone();
        shape[0] = parts.Count;
        return first.Type.Storage() switch
        {
            StorageKind.Float => Tensor.FromFloats(shape, parts.SelectMany(p => p.Floats!.Take(p.Length)).ToArray(), first.Type),
            StorageKind.Double => Tensor.FromDoubles(shape, parts.SelectMany(p => p.Doubles!.Take(p.Length)).ToArray()),
            StorageKind.Long => Tensor.FromLongs(shape, parts.SelectMany(p => p.Longs!.Take(p.Length)).ToArray(), first.Type),
            _ => Tensor.FromStrings(shape, parts.SelectMany(p => p.Strings!.Take(p.Length)).ToArray()),
        };
    }
}
