using Gate.Core.Model;
using Gate.Core.Numerics;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Core.Checks;

/// <summary>Shared plumbing of the white-box checks: layer selection, activation capture, seeded sampling, model predictions.</summary>
public static class MechanisticData
{
    /// <summary>Element-wise activation functions whose outputs count as "hidden activations" for <c>layers: auto</c>.</summary>
    public static readonly IReadOnlySet<string> ActivationOps = new HashSet<string>(StringComparer.Ordinal)
    { "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "Tanh", "Softplus", "Softsign", "HardSwish", "Mish" };

    /// <summary>The <c>layers</c> option: null means <c>auto</c> (also when absent).</summary>
    public static IReadOnlyList<string>? BindLayers(PolicyMapping node) =>
        node["layers"] is PolicySequence s ? s.Items.Select(i => ((PolicyScalar)i).Value).ToList() : null;

    /// <summary>
    /// Resolves the layers to capture: the named tensors (each must exist in the graph), or for auto every output of
    /// an activation node that is not a graph output (the hidden representations, in graph order).
    /// </summary>
    public static IReadOnlyList<string> ResolveLayers(OnnxModel model, IReadOnlyList<string>? named)
    {
        var graph = model.Graph;
        if (named is not null)
        {
            var known = new HashSet<string>(graph.Nodes.SelectMany(n => n.Outputs).Concat(graph.Inputs.Select(i => i.Name)));
            var missing = named.Where(l => !known.Contains(l)).ToList();
            if (missing.Count > 0)
                throw new GateInputException($"{model.FileName}: no tensor named {string.Join(", ", missing.Select(m => $"'{m}'"))} in the graph; hidden activations are: {string.Join(", ", ResolveLayers(model, null))}");
            return named;
        }
        var outputs = new HashSet<string>(graph.Outputs.Select(o => o.Name));
        var auto = graph.Nodes.Where(n => ActivationOps.Contains(n.OpType)).SelectMany(n => n.Outputs)
            .Where(o => o.Length > 0 && !outputs.Contains(o)).ToList();
        if (auto.Count == 0) throw new GateInputException($"{model.FileName}: layers: auto found no hidden activation (no {string.Join("/", ActivationOps.Take(4))}… node output that is not a graph output); name the layers explicitly");
        return auto;
    }

    /// <summary>Runs the built-in engine over the inputs in batches and returns each layer's activations, flattened per sample.</summary>
    public static Dictionary<string, SampleMatrix> CaptureActivations(CheckContext ctx, Tensor inputs, IReadOnlyList<string> layers, CancellationToken ct, int batch = 256)
    {
        int n = inputs.Shape[0];
        var parts = layers.ToDictionary(l => l, _ => new List<double[]>());
        var widths = new Dictionary<string, int>();
        string inputName = ctx.Engine.InputNames.Contains(ctx.PrimaryInput.Name) ? ctx.PrimaryInput.Name : ctx.Engine.InputNames[0];
        for (int start = 0; start < n; start += batch)
        {
            ct.ThrowIfCancellationRequested();
            int count = Math.Min(batch, n - start);
            var pass = ctx.Engine.Forward(new Dictionary<string, Tensor> { [inputName] = inputs.SliceBatch(start, count) }, outputs: [], capture: layers);
            foreach (var l in layers)
            {
                var t = pass[l];
                if (t.Rank == 0 || t.Shape[0] != count)
                    throw new GateInputException($"{ctx.Model.FileName}: tensor '{l}' has shape {t.ShapeString}; a layer to analyse must keep the batch axis first");
                widths[l] = t.Length / count;
                parts[l].Add(t.ToDoubleArray());
            }
        }
        return layers.ToDictionary(l => l, l => new SampleMatrix(parts[l].SelectMany(p => p).ToArray(), n, n == 0 ? 0 : widths[l]));
    }

    /// <summary>A deterministic generator from a 64-bit check seed (System.Random with an int seed is stable across runs).</summary>
    public static Random Rng(ulong seed) => new(unchecked((int)(seed ^ (seed >> 32))) & int.MaxValue);

    /// <summary>The first <paramref name="samples"/> rows of a seeded permutation (all rows, in order, when samples ≥ count).</summary>
    public static int[] ChooseRows(int count, int? samples, Random rng) =>
        samples is int s && s < count ? Permutation.Of(count, rng).Take(s).Order().ToArray() : Enumerable.Range(0, count).ToArray();

    public static Tensor Rows(Tensor t, IReadOnlyList<int> rows)
    {
        int per = t.Length / Math.Max(1, t.Shape[0]);
        var src = t.ToFloatArray();
        var dst = new float[rows.Count * per];
        for (int i = 0; i < rows.Count; i++) Array.Copy(src, rows[i] * per, dst, i * per, per);
        var shape = (int[])t.Shape.Clone(); shape[0] = rows.Count;
        return Tensor.FromFloats(shape, dst);
    }

    /// <summary>
    /// The model's class predictions (argmax of the primary output). Behavioural numbers use the production runtime;
    /// when the policy names one that is missing, this throws so that the check is INCONCLUSIVE rather than silently
    /// measured on a different runtime.
    /// </summary>
    public static (int[] Predictions, string Runtime) Predict(CheckContext ctx, Tensor inputs, CancellationToken ct, int batch = 256)
    {
        Func<Tensor, Tensor> run;
        string runtime;
        if (ctx.Production is { } session) { run = x => session.RunSingle(x, ctx.PrimaryOutput); runtime = session.Info.Name; }
        else if (ctx.Policy.Spec.Runtime == "builtin")
        {
            run = x => ctx.Engine.Run(new Dictionary<string, Tensor> { [ctx.Engine.InputNames[0]] = x }, [ctx.PrimaryOutput])[ctx.PrimaryOutput];
            runtime = "builtin";
        }
        else { ctx.RequireProduction(); throw new InvalidOperationException("unreachable"); }
        int n = inputs.Shape[0];
        var pred = new int[n];
        for (int start = 0; start < n; start += batch)
        {
            ct.ThrowIfCancellationRequested();
            int count = Math.Min(batch, n - start);
            var logits = run(inputs.SliceBatch(start, count)).ToFloatArray();
            int k = logits.Length / count;
            for (int i = 0; i < count; i++)
            {
                int arg = 0;
                for (int j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + arg]) arg = j;
                pred[start + i] = arg;
            }
        }
        return (pred, runtime);
    }
}
