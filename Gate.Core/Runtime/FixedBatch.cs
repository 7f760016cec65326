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
          "data checks run it one sample at a time"
        : null;

    /// <summary>The batch size to feed: 1 for such a model, else <paramref name="preferred"/>.</summary>
    public static int BatchFor(OnnxModel model, int preferred) => IsFixedAtOne(model) ? 1 : preferred;

    /// <summary>Wraps a session so that a batch of n samples runs as n single-sample runs whose outputs are stacked.</summary>
    public static IInferenceSession SampleBySample(IInferenceSession inner) => new SampleSession(inner);

    private sealed class SampleSession(IInferenceSession inner) : IInferenceSession
    {
        public RuntimeInfo Info => inner.Info;
        public IReadOnlyList<string> InputNames => inner.InputNames;
        public IReadOnlyList<string> OutputNames => inner.OutputNames;

        public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string>? outputs = null)
        {
            var batches = inputs.Values.Where(t => t.Rank > 0).Select(t => t.Shape[0]).Distinct().ToList();
            if (batches.Count != 1 || batches[0] <= 1) return inner.Run(inputs, outputs);
            int n = batches[0];
            var parts = new List<IReadOnlyDictionary<string, Tensor>>(n);
            for (int i = 0; i < n; i++)
                parts.Add(inner.Run(inputs.ToDictionary(kv => kv.Key, kv => kv.Value.Rank > 0 ? kv.Value.SliceBatch(i, 1) : kv.Value), outputs));
            return parts[0].Keys.ToDictionary(name => name, name => Stack(name, parts.Select(p => p[name]).ToList()), StringComparer.Ordinal);
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

        public void Dispose() => inner.Dispose();
    }
}
