using Gate.Core.Decision;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Evidence;
using Gate.Core.Numerics;
using Gate.Core.Policy;

namespace Gate.Core.Checks.LinearProbe;

public sealed record LinearProbeOptions(string Dataset, string? Concept, LayerChoice Layers, int Folds, double Regularization, Pooling Pooling = Pooling.Flatten)
    : Gate.Core.Decision.IEstimatesWork
{
    /// <summary>Every sample once, forward, capturing its layers (the probes' fitting is not model work).</summary>
    public Gate.Core.Decision.CheckWork Work(long rows, int classes) => new(rows, 0);

    // Measured on ResNet-18 shapes (17 layers, 557k features, 200 samples): capture and fits 61 s against ~4 s of passes.
    public string? NotEstimated => $"fitting the probes ({Folds} folds per layer; on wide layers this can outweigh the passes)";
}

/// <summary>One layer's cross-validated probe result.</summary>
public sealed record ProbeLayerResult(string Layer, int Units, double Accuracy, int Correct, int Samples, double CiLow, double CiHigh, double[] FoldAccuracies);

/// <summary>
/// Linear probe: is a concept linearly decodable from a layer's activations? For each layer, an L2-regularised
/// logistic regression (scikit-learn's objective, C = <c>regularization</c>) is cross-validated with a seeded
/// stratified k-fold split. The reported accuracy is the mean fold accuracy (scikit-learn's protocol); the interval
/// is the Wilson interval of all held-out predictions pooled. Requirements are judged on the best layer: a
/// <c>max</c> means "no layer may encode the concept", a <c>min</c> means "some layer must".
/// </summary>
public sealed class LinearProbeCheck : ShardedCheck<LinearProbeOptions>
{
    public override CheckDeclaration Declaration => LinearProbeDeclaration.Value;
    public override CheckPlacement Placement => CheckPlacement.Sandbox;

    public override LinearProbeOptions BindOptions(CheckSpec spec, DeploymentPolicy policy)
    {
        var n = spec.Node;
        if (spec.Dataset is null) throw PolicyException.At(n, "linear-probe needs a dataset (inputs and concept labels)");
        return new LinearProbeOptions(spec.Dataset, PolicyLoader.Str(n["concept"]), MechanisticData.BindLayers(n),
            Declaration.Value(n, "folds").Int!.Value, Declaration.Value(n, "regularization").Number!.Value, MechanisticData.BindPooling(n));
    }

    /// <summary>
    /// This shard's layers: each is probed on its own activations with the same seeded folds (from the policy seed
    /// alone), so a layer's record does not depend on which other layers share its shard.
    /// </summary>
    protected override Task<CheckResult> RunUnitsAsync(CheckContext ctx, CheckSpec spec, LinearProbeOptions o, ShardSelection shard, CancellationToken ct)
    {
        var ds = ctx.LoadDataset(o.Dataset);
        if (ds.Labels is null) throw new GateInputException($"dataset '{o.Dataset}' has no labels; a linear probe needs the concept label of every sample");
        var rows = Enumerable.Range(0, ds.Count).ToArray(); // concept sets are small: every sample is used
        var classesSeen = rows.Select(i => ds.Labels[i]).Distinct().Order().ToArray();
        var labels = rows.Select(i => Array.IndexOf(classesSeen, ds.Labels[i])).ToArray();
        // Bounded on the whole layer list, so every shard thins it alike (the budget and the sizes are the same everywhere).
        var samples = ds.Select(rows);
        // Every layer is bounded by memory. Layers it chose itself are also thinned to what direct fits can afford
        // (ProbeFitElements) when the folds have too many rows to fit in their row space, whose cost does not grow with the width.
        var (budget, what) = o.Layers.Named is null && rows.Length > RowSpaceMaxRows ? MechanisticData.ProbeCaptureBudget(ctx) : (MechanisticData.CaptureBudgetBytes(ctx), null);
        var capture = MechanisticData.BoundCapture(ctx, samples, MechanisticData.ResolveLayers(ctx.Model, o.Layers), o.Layers.Named is not null, o.Pooling,
            budget, budgetWhat: what);
        var layers = capture.Layers;
        var (first, end) = shard.Range(layers.Count);
        var mine = layers.Skip((int)first).Take((int)(end - first)).ToList();
        var state = new JsonObject
        {
            ["classLabels"] = new JsonArray(classesSeen.Select(c => (JsonNode)c).ToArray()), ["samples"] = rows.Length,
            ["chance"] = labels.Length == 0 ? 0 : labels.GroupBy(l => l).Max(g => g.Count()) / (double)labels.Length,
            ["captureNote"] = capture.Note,
        };
        var units = new List<JsonObject>();
        if (classesSeen.Length < 2 || mine.Count == 0) // one label: nothing to probe (the merge says so)
            return Task.FromResult(Partial(spec, shard, layers.Count, mine.Select(l => new JsonObject { ["layer"] = l, ["skipped"] = true }).ToList(), state, "builtin"));
        var folds = StratifiedKFold.Assign(labels, o.Folds, MechanisticData.Rng(ctx.SeedFor(spec.Id)));
        var acts = MechanisticData.CaptureActivations(ctx, samples, mine, ct, capture.Batch, o.Pooling);
        foreach (var layer in mine)
        {
            ct.ThrowIfCancellationRequested();
            var x = Probe(layer, acts[layer], labels, classesSeen.Length, folds, o.Folds, o.Regularization);
            units.Add(new JsonObject
            {
                ["layer"] = x.Layer, ["units"] = x.Units, ["accuracy"] = x.Accuracy, ["correct"] = x.Correct, ["samples"] = x.Samples,
                ["ciLow"] = x.CiLow, ["ciHigh"] = x.CiHigh,
                // An empty fold has no accuracy (NaN), which plain JSON cannot carry: null stands for it.
                ["folds"] = new JsonArray(x.FoldAccuracies.Select(a => double.IsNaN(a) ? null : (JsonNode)a).ToArray()),
            });
            ctx.Progress.Report(new ProgressUpdate(spec.Id, "layers", units.Count, mine.Count, "layers"));
        }
        return Task.FromResult(Partial(spec, shard, layers.Count, units, state, "builtin"));
    }

    protected override CheckResult MergeUnits(CheckContext ctx, CheckSpec spec, LinearProbeOptions o, ShardParts parts, string? runtime)
    {
        var r = NewResult(spec);
        var state = parts.Parts[0].State;
        var classesSeen = (state["classLabels"] as JsonArray ?? throw new InvalidDataException("the probe's shard state has no class labels")).Select(v => v!.GetValue<long>()).ToArray();
        int samples = state["samples"]!.GetValue<int>();
        if (classesSeen.Length < 2)
            return CheckResult.Inconclusive(spec, $"dataset '{o.Dataset}' has only one concept label ({string.Join(",", classesSeen)}); nothing to probe");
        var results = parts.Units.Select(u => new ProbeLayerResult(u["layer"]!.GetValue<string>(), u["units"]!.GetValue<int>(), u["accuracy"]!.GetValue<double>(),
            u["correct"]!.GetValue<int>(), u["samples"]!.GetValue<int>(), u["ciLow"]!.GetValue<double>(), u["ciHigh"]!.GetValue<double>(),
            (u["folds"] as JsonArray ?? throw new InvalidDataException("a layer record has no fold accuracies")).Select(a => a?.GetValue<double>() ?? double.NaN).ToArray())).ToList();
        var layers = results.Select(x => x.Layer).ToList();
        if (results.Count == 0) return CheckResult.Inconclusive(spec, "no layer to probe: the layer choice resolved to none");

        var best = results.MaxBy(x => x.Accuracy)!;
        r.Metrics["accuracy"] = best.Accuracy;
        r.Metrics["accuracyLower"] = best.CiLow;
        r.Metrics["accuracyUpper"] = best.CiHigh;
        r.Metrics["samples"] = samples;
        r.Metrics["classes"] = classesSeen.Length;
        r.Metrics["chance"] = state["chance"]!.GetValue<double>();
        foreach (var x in results) r.Metrics[$"accuracy[{x.Layer}]"] = x.Accuracy;
        r.Details["bestLayer"] = best.Layer;
        r.Details["concept"] = o.Concept;
        r.Details["layers"] = new JsonArray(results.Select(x => (JsonNode)new JsonObject
        {
            ["name"] = x.Layer, ["units"] = x.Units, ["accuracy"] = x.Accuracy, ["ciLow"] = x.CiLow, ["ciHigh"] = x.CiHigh,
            ["folds"] = new JsonArray(x.FoldAccuracies.Select(a => (JsonNode)a).ToArray()),
        }).ToArray());
        var json = new JsonObject
        {
            ["concept"] = o.Concept, ["dataset"] = o.Dataset, ["folds"] = o.Folds, ["pooling"] = o.Pooling.ToString().ToLowerInvariant(), ["regularization"] = o.Regularization,
            ["seed"] = ctx.SeedFor(spec.Id).ToString(CultureInfo.InvariantCulture), ["samples"] = samples,
            ["classLabels"] = new JsonArray(classesSeen.Select(c => (JsonNode)c).ToArray()),
            ["layers"] = r.Details["layers"]!.DeepClone(),
        };
        r.Evidence.Add(ctx.Evidence.WriteText("probe-layers.json", json.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }),
            "per-layer cross-validated probe accuracy"));

        r.Verdict = Verdict.Pass;
        Requirements.Apply(r, spec.Require);
        string concept = o.Concept is null ? "the concept" : $"'{o.Concept}'";
        r.Summary = $"{concept} is best decoded at {best.Layer}: accuracy {best.Accuracy:F2} (95% CI {best.CiLow:F2}–{best.CiHigh:F2}, chance {r.Metrics["chance"]:F2}) over {layers.Count} layer(s), {o.Folds}-fold CV";
        r.Coverage = $"{samples} samples of dataset '{o.Dataset}', {layers.Count} layer(s): {string.Join(", ", layers)}{PoolingNote(o.Pooling)}; linear decodability only (a non-linear read-out may still find the concept){(state["captureNote"] is { } note ? "; " + note.GetValue<string>() : "")}";
        r.Runtime = "builtin";
        return r;
    }

    internal static string PoolingNote(Pooling p) => p == Pooling.Flatten ? "" : $" (token positions pooled: {p.ToString().ToLowerInvariant()})";

    /// <summary>
    /// Training folds of at most this many rows that are narrower than the layer are fitted in their row space
    /// (<see cref="RowSpace"/>): the same optimum, at the cost of one Gram matrix per layer and an m×m eigendecomposition
    /// per fold (Jacobi, ~10·6m³), which stays below the direct fit's per-iteration m·d·classes on wide layers up to here.
    /// </summary>
    public const int RowSpaceMaxRows = 1024;

    /// <summary>Cross-validates one layer. Exposed for tests.</summary>
    public static ProbeLayerResult Probe(string layer, SampleMatrix x, int[] labels, int classes, int[] folds, int k, double c)
    {
        int correct = 0;
        var foldAcc = new double[k];
        double[]? gram = null;
        for (int f = 0; f < k; f++)
        {
            var train = Enumerable.Range(0, labels.Length).Where(i => folds[i] != f).ToArray();
            var test = Enumerable.Range(0, labels.Length).Where(i => folds[i] == f).ToArray();
            if (test.Length == 0) { foldAcc[f] = double.NaN; continue; }
            var trainY = train.Select(i => labels[i]).ToArray();
            var predicted = new int[test.Length];
            var present = trainY.Distinct().Order().ToArray();
            if (present.Length == 1) Array.Fill(predicted, present[0]); // a one-class fold has nothing to fit
            else
            {
                // Fit on the classes present in this training fold, mapping back to global labels.
                var local = trainY.Select(y => Array.IndexOf(present, y)).ToArray();
                if (train.Length < x.Columns && train.Length <= RowSpaceMaxRows)
                {
                    gram ??= SymmetricMatrix.RowGram(x.Data, x.Rows, x.Columns);
                    var (zTrain, zTest, rank) = RowSpace.Coordinates(gram, x.Rows, train, test);
                    var model = LogisticRegression.Fit(zTrain, train.Length, rank, local, present.Length, c);
                    for (int t = 0; t < test.Length; t++) predicted[t] = present[model.Predict(zTest.AsSpan(t * rank, rank))];
                }
                else
                {
                    var model = LogisticRegression.Fit(x.SelectRows(train).Data, train.Length, x.Columns, local, present.Length, c);
                    for (int t = 0; t < test.Length; t++) predicted[t] = present[model.Predict(x.Row(test[t]))];
                }
            }
            int ok = 0;
            for (int t = 0; t < test.Length; t++) if (predicted[t] == labels[test[t]]) ok++;
            correct += ok;
            foldAcc[f] = (double)ok / test.Length;
        }
        var valid = foldAcc.Where(a => !double.IsNaN(a)).ToArray();
        var (lo, hi) = Statistics.WilsonInterval(correct, labels.Length);
        return new ProbeLayerResult(layer, x.Columns, valid.Average(), correct, labels.Length, lo, hi, foldAcc);
    }
}
