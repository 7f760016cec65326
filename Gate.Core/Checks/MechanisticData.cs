using Gate.Core.Model;
using Gate.Core.Numerics;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Core.Checks;

/// <summary>Which layers a white-box check reads: named tensors, the residual stream, or (neither) auto.</summary>
public sealed record LayerChoice(IReadOnlyList<string>? Named, bool Residual = false);

/// <summary>How activations with a token-position axis become one vector per sample (the <c>pooling</c> option).</summary>
public enum Pooling { Flatten, Cls, Mean, Last }

/// <summary>Shared plumbing of the white-box checks: layer selection, activation capture, seeded sampling, model predictions.</summary>
public static class MechanisticData
{
    /// <summary>Element-wise activation functions whose outputs count as "hidden activations" for <c>layers: auto</c>.</summary>
    public static readonly IReadOnlySet<string> ActivationOps = new HashSet<string>(StringComparer.Ordinal)
    { "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "Tanh", "Softplus", "Softsign", "HardSwish", "Mish" };

    /// <summary>The <c>layers</c> option: a list of tensors, <c>residual</c>, or null for <c>auto</c> (also when absent).</summary>
    public static LayerChoice BindLayers(PolicyMapping node) => node["layers"] switch
    {
        PolicySequence s => new LayerChoice(s.Items.Select(i => ((PolicyScalar)i).Value).ToList()),
        PolicyScalar { Value: "residual" } => new LayerChoice(null, Residual: true),
        _ => new LayerChoice(null),
    };

    /// <summary>The <c>pooling</c> option over token positions (declared once in <see cref="PoolingOption"/>).</summary>
    public static Pooling BindPooling(PolicyMapping node) => PolicyLoader.Str(node["pooling"]) switch
    {
        "cls" => Pooling.Cls, "mean" => Pooling.Mean, "last" => Pooling.Last, _ => Pooling.Flatten,
    };

    /// <summary>The shared <c>pooling</c> option of the white-box checks that read activations.</summary>
    public static OptionDecl PoolingOption => Opt.Enum("pooling",
        "How a layer of a sequence model ([samples, positions, width]) becomes one vector per sample: flatten (every position, " +
        "concatenated), cls (position 0, the classification token), mean (the average over positions) or last (the final position). " +
        "Layers without a position axis are used as they are.", "flatten", "cls", "mean", "last") with { Default = "flatten", Strength = Strength.Neutral };

    /// <summary>
    /// Resolves the layers to capture: the named tensors (each must exist in the graph); for <c>residual</c> the
    /// residual stream of an attention model (<see cref="ResidualStream"/>); for auto every output of an activation
    /// node, or of a GELU written out as an Erf expression, that is not a graph output (in graph order).
    /// </summary>
    public static IReadOnlyList<string> ResolveLayers(OnnxModel model, LayerChoice choice)
    {
        var graph = model.Graph;
        var named = choice.Named;
        if (choice.Residual)
        {
            var stream = ResidualStream(model);
            if (stream.Count == 0)
                throw new GateInputException($"{model.FileName}: layers: residual found no residual stream (no tensor that enters a layer normalisation, " +
                                             "as LayerNormalization or as ReduceMean/Sub); name the layers explicitly");
            return stream;
        }
        if (named is not null)
        {
            var known = new HashSet<string>(graph.Nodes.SelectMany(n => n.Outputs).Concat(graph.Inputs.Select(i => i.Name)));
            var missing = named.Where(l => !known.Contains(l)).ToList();
            if (missing.Count > 0)
                throw new GateInputException($"{model.FileName}: no tensor named {string.Join(", ", missing.Select(m => $"'{m}'"))} in the graph; hidden activations are: {string.Join(", ", ResolveLayers(model, new LayerChoice(null)))}");
            return named;
        }
        var outputs = new HashSet<string>(graph.Outputs.Select(o => o.Name));
        var gelus = ErfGeluOutputs(model);
        var auto = graph.Nodes.SelectMany(n => ActivationOps.Contains(n.OpType) ? n.Outputs : n.Outputs.Where(gelus.Contains))
            .Where(o => o.Length > 0 && !outputs.Contains(o)).ToList();
        if (auto.Count == 0) throw new GateInputException($"{model.FileName}: layers: auto found no hidden activation (no {string.Join("/", ActivationOps.Take(4))}… node output that is not a graph output); name the layers explicitly");
        return auto;
    }

    /// <summary>
    /// The outputs of GELUs that exporters write out as x·½(1 + erf(x/√2)) (torch before opset 20, ViTs, BERTs):
    /// an Erf whose result passes through Add and Mul, the output being the last Mul of the chain (a trailing Mul by
    /// ½ included). Each is a hidden activation as a Gelu node's output would be.
    /// </summary>
    public static HashSet<string> ErfGeluOutputs(OnnxModel model)
    {
        var consumers = Consumers(model);
        Node? Only(string tensor, string op) => consumers.TryGetValue(tensor, out var c) && c.Count == 1 && c[0].OpType == op ? c[0] : null;
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (var erf in model.Graph.Nodes.Where(n => n.OpType == "Erf"))
        {
            if (Only(erf.Outputs[0], "Add") is not { } add || Only(add.Outputs[0], "Mul") is not { } mul) continue;
            var last = mul;
            if (Only(mul.Outputs[0], "Mul") is { } half && half.Inputs.Any(i => IsConstant(model, i))) last = half;
            found.Add(last.Outputs[0]);
        }
        return found;
    }

    /// <summary>
    /// The residual stream of an attention model: every tensor that enters a layer normalisation (a LayerNormalization
    /// node, or the ReduceMean/Sub pair exporters emit for it before opset 17), in graph order. In a post-norm block
    /// these are the sums x + attention(x) and x + mlp(x); in a pre-norm block the stream before each sublayer.
    /// </summary>
    public static IReadOnlyList<string> ResidualStream(OnnxModel model)
    {
        var graph = model.Graph;
        var consumers = Consumers(model);
        var inputs = graph.Inputs.Select(i => i.Name).ToHashSet();
        var stream = new List<string>();
        foreach (var n in graph.Nodes)
            foreach (var o in n.Outputs.Where(o => o.Length > 0 && consumers.ContainsKey(o)))
            {
                var c = consumers[o];
                bool entersNorm = c.Any(x => x.OpType == "LayerNormalization" && x.Inputs[0] == o)
                                  || (c.Any(x => x.OpType == "ReduceMean") && c.Any(x => x.OpType == "Sub" && x.Inputs[0] == o));
                if (entersNorm && !inputs.Contains(o) && !stream.Contains(o)) stream.Add(o);
            }
        return stream;
    }

    private static Dictionary<string, List<Node>> Consumers(OnnxModel model)
    {
        var map = new Dictionary<string, List<Node>>(StringComparer.Ordinal);
        foreach (var n in model.Graph.Nodes)
            foreach (var i in n.Inputs.Where(i => i.Length > 0))
                (map.TryGetValue(i, out var l) ? l : map[i] = []).Add(n);
        return map;
    }

    private static bool IsConstant(OnnxModel model, string tensor) =>
        model.Graph.Initializers.ContainsKey(tensor) || model.Graph.Nodes.Any(n => n.OpType == "Constant" && n.Outputs.Contains(tensor));

    /// <summary>
    /// What the captured activations of a white-box check may occupy, all samples and layers together: a quarter of
    /// the memory this process may use, so the capture scales with what the policy grants and leaves the rest to the
    /// model, the engine's working tensors and the analysis. In a sandbox that is the policy's limit (the cgroup, or
    /// the GC heap limit the process backends set; the bound plan carries no limits); where the policy is at hand
    /// and stricter than the process's memory, the policy's.
    /// </summary>
    public static long CaptureBudgetBytes(CheckContext ctx)
    {
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        long policy = ctx.Policy.Spec.Sandbox.Limits.MemoryBytes;
        return (policy > 0 ? Math.Min(policy, available) : available) / 4;
    }

    /// <summary>The layers a capture may hold within its budget, the batch it may run at, and what was left out (null when nothing).</summary>
    public sealed record BoundedCapture(IReadOnlyList<string> Layers, int Batch, string? Note);

    /// <summary>
    /// Bounds a capture before it runs: each layer's size per sample is measured on one sample (after pooling, as
    /// captured), then the layers must fit <paramref name="budgetBytes"/> for all <paramref name="samples"/>. Named
    /// layers that do not fit are refused with what they need (the user chose them); <c>auto</c> and <c>residual</c>
    /// keep the largest evenly spaced subset that fits (the deepest layer always among them) and say so. The batch
    /// shrinks so that one batch's captures take at most a sixteenth of the budget (<see cref="BatchShareOfCapture"/>).
    /// </summary>
    public static BoundedCapture BoundCapture(CheckContext ctx, IReadOnlyDictionary<string, Tensor> feeds, IReadOnlyList<string> layers, bool chosenByUser, Pooling pooling,
        long budgetBytes, int batch = 256, string? budgetWhat = null)
    {
        int n = feeds.Values.First().Shape[0];
        if (n == 0) return new BoundedCapture(layers, batch, null);
        int probe = Math.Min(FixedBatch.BatchFor(ctx.Model, 1), n);
        var pass = ctx.Engine.Forward(feeds.ToDictionary(kv => kv.Key, kv => kv.Value.SliceBatch(0, probe), StringComparer.Ordinal), outputs: [], capture: layers);
        var perSample = layers.Select(l =>
        {
            var t = pass[l];
            long elements = t.Rank == 3 && pooling != Pooling.Flatten ? (long)t.Shape[0] * t.Shape[2] : t.Length;
            return (Layer: l, Bytes: elements * sizeof(double) / Math.Max(1, probe));
        }).ToList();
        return ChooseWithin(perSample, n, budgetBytes, chosenByUser, FixedBatch.BatchFor(ctx.Model, batch), ctx.Model.FileName, budgetWhat);
    }

    /// <summary>
    /// What the activations a linear probe fits on may hold when it chose its layers itself (<c>auto</c>, <c>residual</c>)
    /// and its folds are too many rows for the row-space fit (<c>LinearProbeCheck.RowSpaceMaxRows</c>): then every fold's
    /// L-BFGS (to a gradient of 1e-6) passes over samples × features per iteration, and the fitting — not the model's
    /// forward passes, which the estimate counts — is the probe's cost. Measured on ResNet-18 shapes with that direct
    /// fit (200 samples, docs/benchmarks/budgets.md): ~550k activation features ran past 5 minutes, 2^24 sample-features
    /// past 11. A bound, not a cost model. Named layers are the user's choice and are not thinned by it.
    /// </summary>
    public const long ProbeFitElements = 1L << 21;

    /// <summary>The capture budget of a check that fits probes on what it captures: the memory's, or the fitting budget when smaller.</summary>
    public static (long Bytes, string? What) ProbeCaptureBudget(CheckContext ctx)
    {
        long memory = CaptureBudgetBytes(ctx), fit = ProbeFitElements * sizeof(double);
        return fit < memory ? (fit, $"the probes' fitting budget of 2^21 sample-features ({fit / (1024 * 1024)} MiB)") : (memory, null);
    }

    /// <summary>
    /// One batch's captures take at most this fraction (1/N) of the capture budget. The pass that captures them also
    /// holds every other intermediate of the batch, and each capture is copied to doubles, so one batch costs several
    /// times its captures: on ResNet-18 (all 17 layers, 12 GiB) a quarter meant batches of 172 samples and ~2 GB in
    /// flight; a sixteenth gives 43, with the model passes no slower.
    /// </summary>
    public const int BatchShareOfCapture = 16;

    /// <summary>The selection rule of <see cref="BoundCapture"/> on measured sizes (bytes per sample of each layer, in graph order).</summary>
    public static BoundedCapture ChooseWithin(IReadOnlyList<(string Layer, long Bytes)> perSample, int samples, long budgetBytes, bool chosenByUser,
        int batch, string modelName, string? budgetWhat = null)
    {
        budgetWhat ??= $"the capture budget of {budgetBytes / (1024.0 * 1024):F0} MiB, a quarter of the sandbox's memory";
        static string MiB(long b) => $"{b / (1024.0 * 1024):F0} MiB";
        long Need(IEnumerable<(string Layer, long Bytes)> ls) => ls.Sum(l => l.Bytes) * samples;
        var chosen = perSample.ToList();
        string? note = null;
        if (Need(chosen) > budgetBytes)
        {
            if (chosenByUser)
                throw new InsufficientMemoryException($"{modelName}: the {perSample.Count} named layer(s) need {MiB(Need(perSample))} of activations for {samples} samples, " +
                    $"over the capture budget of {MiB(budgetBytes)} (a quarter of the sandbox's memory): name fewer or smaller layers, lower samples, " +
                    "pool a sequence model (pooling: mean|cls) or raise sandbox.limits.memory");
            chosen = [];
            for (int k = perSample.Count - 1; k >= 1 && chosen.Count == 0; k--)
            {
                // k layers spread evenly over the depth, ending at the deepest.
                var pick = Enumerable.Range(0, k).Select(i => perSample[k == 1 ? perSample.Count - 1 : (int)Math.Round(i * (perSample.Count - 1) / (double)(k - 1))]).Distinct().ToList();
                if (Need(pick) <= budgetBytes) chosen = pick;
            }
            if (chosen.Count == 0 && perSample.MinBy(l => l.Bytes) is var smallest && Need([smallest]) <= budgetBytes) chosen = [smallest];
            if (chosen.Count == 0)
                throw new InsufficientMemoryException($"{modelName}: layers: auto found no layer whose activations for {samples} samples fit the capture budget of {MiB(budgetBytes)} " +
                    $"(the smallest needs {MiB(Need([perSample.MinBy(l => l.Bytes)]))}): lower samples, name a small layer or raise sandbox.limits.memory");
            note = $"layers: auto captured {chosen.Count} of {perSample.Count} hidden activations ({MiB(Need(chosen))}; all would need {MiB(Need(perSample))}, " +
                   $"over {budgetWhat})";
        }
        long perBatchSample = Math.Max(1, chosen.Sum(l => l.Bytes));
        int fitted = (int)Math.Clamp(budgetBytes / BatchShareOfCapture / perBatchSample, 1, batch);
        return new BoundedCapture(chosen.Select(l => l.Layer).ToList(), batch == 1 ? 1 : fitted, note);
    }

    /// <summary>Runs the built-in engine over the inputs in batches and returns each layer's activations, pooled over
    /// token positions as declared and flattened per sample.</summary>
    public static Dictionary<string, SampleMatrix> CaptureActivations(CheckContext ctx, Tensor inputs, IReadOnlyList<string> layers, CancellationToken ct, int batch = 256,
        Pooling pooling = Pooling.Flatten) =>
        CaptureActivations(ctx, new Dictionary<string, Tensor> { [ctx.PrimaryInput.Name] = inputs }, layers, ct, batch, pooling);

    /// <summary>As above, for a model fed several inputs (one array per input, samples on the first axis).</summary>
    public static Dictionary<string, SampleMatrix> CaptureActivations(CheckContext ctx, IReadOnlyDictionary<string, Tensor> feeds, IReadOnlyList<string> layers, CancellationToken ct, int batch = 256,
        Pooling pooling = Pooling.Flatten)
    {
        int n = feeds.Values.First().Shape[0];
        batch = FixedBatch.BatchFor(ctx.Model, batch);
        // Each layer's matrix is allocated once its width is known and every batch is copied into its rows: holding
        // the batches and concatenating them at the end would need twice the capture's memory at its peak.
        var matrices = new Dictionary<string, SampleMatrix>(StringComparer.Ordinal);
        for (int start = 0; start < n; start += batch)
        {
            ct.ThrowIfCancellationRequested();
            int count = Math.Min(batch, n - start);
            var pass = ctx.Engine.Forward(Feed(ctx, ctx.Engine.InputNames, feeds, start, count), outputs: [], capture: layers);
            foreach (var l in layers)
            {
                var t = pass[l];
                if (t.Rank == 0 || t.Shape[0] != count)
                    throw new GateInputException($"{ctx.Model.FileName}: tensor '{l}' has shape {t.ShapeString}; a layer to analyse must keep the batch axis first");
                var pooled = Pool(t.ToDoubleArray(), t.Shape, pooling);
                int width = pooled.Length / count;
                if (!matrices.TryGetValue(l, out var m))
                    matrices[l] = m = new SampleMatrix(new double[checked((long)n * width) is var size && size <= Array.MaxLength ? (int)size
                        : throw new InsufficientMemoryException($"{ctx.Model.FileName}: tensor '{l}' for {n} samples has {size} elements, over one array's {Array.MaxLength}: lower samples")], n, width);
                else if (m.Columns != width)
                    throw new GateInputException($"{ctx.Model.FileName}: tensor '{l}' has {width} features per sample in samples {start}..{start + count - 1} but {m.Columns} before; a layer to analyse must keep its size across batches");
                Array.Copy(pooled, 0, m.Data, (long)start * width, pooled.Length);
            }
        }
        return layers.ToDictionary(l => l, l => matrices.TryGetValue(l, out var m) ? m : new SampleMatrix([], 0, 0));
    }

    /// <summary>
    /// Pools a [samples, positions, width] activation over its position axis (axis 1). Other ranks have no position
    /// axis and are returned as they are: pooling a convolution's [N, C, H, W] over channels would mean nothing.
    /// </summary>
    public static double[] Pool(double[] a, int[] shape, Pooling pooling)
    {
        if (pooling == Pooling.Flatten || shape.Length != 3) return a;
        int n = shape[0], t = shape[1], d = shape[2];
        var r = new double[n * d];
        for (int s = 0; s < n; s++)
            for (int j = 0; j < d; j++)
                r[s * d + j] = pooling switch
                {
                    Pooling.Cls => a[(s * t) * d + j],
                    Pooling.Last => a[(s * t + t - 1) * d + j],
                    _ => Enumerable.Range(0, t).Sum(p => a[(s * t + p) * d + j]) / t,
                };
        return r;
    }

    /// <summary>A deterministic generator from a 64-bit check seed (System.Random with an int seed is stable across runs).</summary>
    public static Random Rng(ulong seed) => new(unchecked((int)(seed ^ (seed >> 32))) & int.MaxValue);

    /// <summary>The first <paramref name="samples"/> rows of a seeded permutation (all rows, in order, when samples ≥ count).</summary>
    public static int[] ChooseRows(int count, int? samples, Random rng) =>
        samples is int s && s < count ? Permutation.Of(count, rng).Take(s).Order().ToArray() : Enumerable.Range(0, count).ToArray();

    /// <summary>The chosen samples, in the tensor's own element type (token ids stay integers).</summary>
    public static Tensor Rows(Tensor t, IReadOnlyList<int> rows)
    {
        int per = t.Length / Math.Max(1, t.Shape[0]);
        var shape = (int[])t.Shape.Clone(); shape[0] = rows.Count;
        if (t.Type.Storage() == StorageKind.Long)
        {
            var l = new long[rows.Count * per];
            for (int i = 0; i < rows.Count; i++) Array.Copy(t.Longs!, rows[i] * per, l, i * per, per);
            return Tensor.FromLongs(shape, l, t.Type);
        }
        var src = t.ToFloatArray();
        var dst = new float[rows.Count * per];
        for (int i = 0; i < rows.Count; i++) Array.Copy(src, rows[i] * per, dst, i * per, per);
        return Tensor.FromFloats(shape, dst);
    }

    /// <summary>
    /// The model's class predictions (argmax of the primary output). Behavioural numbers use the production runtime;
    /// when the policy names one that is missing, this throws so that the check is INCONCLUSIVE rather than silently
    /// measured on a different runtime.
    /// </summary>
    public static (int[] Predictions, string Runtime) Predict(CheckContext ctx, Tensor inputs, CancellationToken ct, int batch = 256) =>
        Predict(ctx, new Dictionary<string, Tensor> { [ctx.PrimaryInput.Name] = inputs }, ct, batch);

    /// <summary>As above, for a model fed several inputs.</summary>
    public static (int[] Predictions, string Runtime) Predict(CheckContext ctx, IReadOnlyDictionary<string, Tensor> feeds, CancellationToken ct, int batch = 256)
    {
        var (run, runtime) = Runner(ctx, feeds);
        batch = FixedBatch.BatchFor(ctx.Model, batch);
        int n = feeds.Values.First().Shape[0];
        var pred = new int[n];
        for (int start = 0; start < n; start += batch)
        {
            ct.ThrowIfCancellationRequested();
            int count = Math.Min(batch, n - start);
            var logits = run(start, count).ToFloatArray();
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

    /// <summary>
    /// How a behavioural check runs the model on samples [start, start+count) of <paramref name="feeds"/>: the
    /// production runtime, else (runtime: builtin) the built-in engine; when the policy names a runtime that is
    /// missing this throws, so the check is INCONCLUSIVE rather than measured on a different runtime.
    /// </summary>
    public static (Func<int, int, Tensor> Run, string Runtime) Runner(CheckContext ctx, IReadOnlyDictionary<string, Tensor> feeds)
    {
        string output = ctx.PrimaryOutput;
        if (ctx.Production is { } session)
            return ((start, count) => session.Run(Feed(ctx, session.InputNames, feeds, start, count), [output])[output], session.Info.Name);
        if (ctx.Policy.Spec.Runtime == "builtin")
            return ((start, count) => ctx.Engine.Run(Feed(ctx, ctx.Engine.InputNames, feeds, start, count), [output])[output], "builtin");
        ctx.RequireProduction();
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>
    /// Samples [start, start+count) as the model's feed. One array is the primary input (named as the runtime knows
    /// it, as before multi-input datasets); several are fed by name, each being one of the model's inputs.
    /// </summary>
    public static Dictionary<string, Tensor> Feed(CheckContext ctx, IReadOnlyList<string> inputNames, IReadOnlyDictionary<string, Tensor> feeds, int start, int count)
    {
        if (feeds.Count == 1)
        {
            string name = inputNames.Contains(ctx.PrimaryInput.Name) ? ctx.PrimaryInput.Name : inputNames[0];
            return new Dictionary<string, Tensor> { [name] = feeds.Values.First().SliceBatch(start, count) };
        }
        return feeds.ToDictionary(kv => kv.Key, kv => kv.Value.SliceBatch(start, count), StringComparer.Ordinal);
    }
}
