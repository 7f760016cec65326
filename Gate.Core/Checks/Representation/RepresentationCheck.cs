using Gate.Core.Decision;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Evidence;
using Gate.Core.Policy;

namespace Gate.Core.Checks.Representation;

public sealed record RepresentationOptions(string Dataset, int? Samples, LayerChoice Layers, double SparsityThreshold, double CodingRateEpsilon, Pooling Pooling = Pooling.Flatten)
    : Gate.Core.Decision.IEstimatesWork
{
    public Gate.Core.Decision.CheckWork Work(long rows, int classes) => new(Math.Min(Samples ?? rows, rows), 0);

    public string? NotEstimated => "each layer's Gram matrix and its eigenvalues";
}

/// <summary>
/// Per-layer statistics of the hidden representations on a dataset: activation sparsity, effective rank and coding
/// rate. Informational unless the policy sets <c>require</c> bounds, which then hold for every layer (the reported
/// requirement value is the layer that comes closest to, or goes furthest past, the bound).
/// </summary>
public sealed class RepresentationCheck : Check<RepresentationOptions>
{
    public override CheckDeclaration Declaration => RepresentationDeclaration.Value;
    public override CheckPlacement Placement => CheckPlacement.Sandbox;

    private static readonly string[] MetricNames = ["sparsity", "effectiveRank", "codingRate"];

    public override RepresentationOptions BindOptions(CheckSpec spec, DeploymentPolicy policy)
    {
        var n = spec.Node;
        var d = Declaration; // explicit values, else the declared defaults
        return new RepresentationOptions(spec.Dataset ?? throw PolicyException.At(n, "representation needs a dataset"),
            d.Value(n, "samples").Int, MechanisticData.BindLayers(n),
            d.Value(n, "sparsityThreshold").Number!.Value, d.Value(n, "codingRateEpsilon").Number!.Value, MechanisticData.BindPooling(n));
    }

    public override Task<CheckResult> RunAsync(CheckContext ctx, CheckSpec spec, RepresentationOptions o, CancellationToken ct)
    {
        var r = NewResult(spec);
        var ds = ctx.LoadDataset(o.Dataset);
        var rows = MechanisticData.ChooseRows(ds.Count, o.Samples, MechanisticData.Rng(ctx.SeedFor(spec.Id)));
        var samples = ds.Select(rows);
        var capture = MechanisticData.BoundCapture(ctx, samples, MechanisticData.ResolveLayers(ctx.Model, o.Layers), o.Layers.Named is not null, o.Pooling,
            MechanisticData.CaptureBudgetBytes(ctx));
        var layers = capture.Layers;
        var acts = MechanisticData.CaptureActivations(ctx, samples, layers, ct, capture.Batch, o.Pooling);
        var results = new List<LayerRepresentation>();
        foreach (var l in layers)
        {
            ct.ThrowIfCancellationRequested();
            results.Add(RepresentationMetrics.Measure(l, acts[l], o.SparsityThreshold, o.CodingRateEpsilon));
            ctx.Progress.Report(new ProgressUpdate(spec.Id, "layers", results.Count, layers.Count, "layers"));
        }
        foreach (var x in results)
        {
            r.Metrics[$"sparsity[{x.Layer}]"] = x.Sparsity;
            r.Metrics[$"effectiveRank[{x.Layer}]"] = x.EffectiveRank;
            r.Metrics[$"codingRate[{x.Layer}]"] = x.CodingRate;
        }
        r.Metrics["samples"] = rows.Length;
        r.Details["layers"] = new JsonArray(results.Select(x => (JsonNode)new JsonObject
        {
            ["name"] = x.Layer, ["units"] = x.Units, ["sparsity"] = x.Sparsity, ["effectiveRank"] = x.EffectiveRank, ["codingRate"] = x.CodingRate,
        }).ToArray());
        r.Details["definitions"] = new JsonObject
        {
            ["sparsity"] = $"fraction of activations with |a| < {o.SparsityThreshold}",
            ["effectiveRank"] = "exp(entropy of the normalised singular values) of the uncentred samples×units matrix (Roy & Vetterli 2007)",
            ["codingRate"] = $"½ log det(I + d/(n ε²) Z Zᵀ) in nats, Z = units×samples, ε = {o.CodingRateEpsilon}",
        };
        r.Evidence.Add(ctx.Evidence.WriteText("representation.json", r.Details.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }), "per-layer representation metrics"));

        // Each required metric must hold on every layer: judge the layer that is worst with respect to the bound.
        var judged = new Dictionary<string, double>();
        foreach (var (metric, bound) in spec.Require)
        {
            if (!MetricNames.Contains(metric)) continue;
            Func<LayerRepresentation, double> get = metric switch { "sparsity" => x => x.Sparsity, "effectiveRank" => x => x.EffectiveRank, _ => x => x.CodingRate };
            var worst = results.FirstOrDefault(x => !bound.Holds(get(x)))
                        ?? (bound.Min is not null ? results.MinBy(get)! : results.MaxBy(get)!);
            judged[metric] = get(worst);
            r.Metrics[metric] = get(worst);
            r.Details[$"{metric}JudgedLayer"] = worst.Layer;
        }
        r.Verdict = Verdict.Pass;
        Requirements.Apply(r, spec.Require, judged);
        r.Summary = string.Join("; ", results.Select(x => $"{x.Layer}: sparsity {x.Sparsity:F2}, effective rank {x.EffectiveRank:F1}/{x.Units}, coding rate {x.CodingRate:F1}"))
                    + (spec.Require.Count == 0 ? " (informational)" : "");
        r.Coverage = $"{rows.Length} samples of dataset '{o.Dataset}', {layers.Count} layer(s){LinearProbe.LinearProbeCheck.PoolingNote(o.Pooling)}{(capture.Note is null ? "" : "; " + capture.Note)}";
        r.Runtime = "builtin";
        return Task.FromResult(r);
    }
}
