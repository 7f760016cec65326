using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Core.Checks.Accuracy;

public sealed record AccuracyOptions(string Dataset, int? Samples, double? Confidence) : Gate.Core.Decision.IEstimatesWork
{
    public Gate.Core.Decision.CheckWork Work(long rows, int classes) => new(Math.Min(Samples ?? rows, rows), 0);
}

/// <summary>Top-1 accuracy of the model on a labelled dataset, run on the production runtime when available.</summary>
public sealed class AccuracyCheck : Check<AccuracyOptions>
{
    public override CheckDeclaration Declaration => AccuracyDeclaration.Value;
    public override CheckPlacement Placement => CheckPlacement.Sandbox;

    public override AccuracyOptions BindOptions(CheckSpec spec, DeploymentPolicy policy) => new(
        spec.Dataset!, spec.Node["samples"] is PolicyScalar s ? (int)s.AsLong() : null,
        spec.Node["confidence"] is PolicyScalar c ? c.AsDouble() : null);

    public override Task<CheckResult> RunAsync(CheckContext ctx, CheckSpec spec, AccuracyOptions o, CancellationToken ct)
    {
        var r = NewResult(spec);
        var ds = ctx.LoadDataset(o.Dataset);
        int n = Math.Min(o.Samples ?? ds.Count, ds.Count);
        // Accuracy is a behavioural measurement; when the policy names onnxruntime and it is missing, the
        // measurement would not be of the production model, so it is inconclusive rather than substituted.
        if (ctx.Production is null && ctx.Policy.Spec.Runtime == "onnxruntime")
            return Task.FromResult(CheckResult.Inconclusive(spec, ctx.ProductionUnavailableReason ?? "production runtime unavailable"));
        var (run, runtimeName) = MechanisticData.Runner(ctx, ds.Feeds);
        int correct = 0;
        const int batch = 256;
        for (int start = 0; start < n; start += batch)
        {
            ct.ThrowIfCancellationRequested();
            int count = Math.Min(batch, n - start);
            var logits = run(start, count);
            if (logits.Type.IsInteger() && logits.Length == count)
            {
                // A classifier that outputs its predicted label (scikit-learn's `label` through ONNX Runtime) is
                // compared with the labels directly; there are no scores to argmax.
                var predicted = logits.ToLongArray();
                for (int i = 0; i < count; i++) if (predicted[i] == ds.Labels![start + i]) correct++;
            }
            else
            {
                int classes = logits.Length / count;
                var lf = logits.ToFloatArray();
                for (int i = 0; i < count; i++)
                {
                    int arg = 0;
                    for (int k = 1; k < classes; k++) if (lf[i * classes + k] > lf[i * classes + arg]) arg = k;
                    if (arg == ds.Labels![start + i]) correct++;
                }
            }
            ctx.Progress.Report(new ProgressUpdate(spec.Id, "samples", start + count, n, "samples"));
        }
        double acc = n == 0 ? double.NaN : (double)correct / n;
        r.Metrics["accuracy"] = acc;
        r.Metrics["samples"] = n;
        r.Metrics["correct"] = correct;
        var (lo, hi) = Statistics.WilsonInterval(correct, n, o.Confidence ?? 0.95);
        r.Metrics["accuracyLower"] = lo;
        r.Metrics["accuracyUpper"] = hi;
        r.Runtime = runtimeName;
        // The requirement's `bound` picks accuracy, accuracyLower or accuracyUpper (MetricBound.JudgedMetric).
        Requirements.Apply(r, spec.Require);
        r.Summary = $"accuracy {acc:P2} on {n} samples ({correct} correct) via {runtimeName}";
        r.Coverage = $"{n} samples of dataset '{o.Dataset}'";
        return Task.FromResult(r);
    }
}
