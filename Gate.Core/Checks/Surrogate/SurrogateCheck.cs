using System.Globalization;
using Gate.Core.Evidence;
using Gate.Core.Numerics;
using Gate.Core.Policy;

namespace Gate.Core.Checks.Surrogate;

public sealed record SurrogateOptions(string Dataset, int? Samples, int MaxDepth, int MinSamplesLeaf, double Holdout);

/// <summary>
/// Distils the model into a depth-limited CART tree trained on the model's own predictions (not the labels) over the
/// dataset's input features, and reports fidelity: the share of held-out samples on which tree and model agree.
/// A high fidelity means a reviewer can read the tree as a faithful summary of the model on this data.
/// </summary>
public sealed class SurrogateCheck : Check<SurrogateOptions>
{
    public override CheckDeclaration Declaration => SurrogateDeclaration.Value;
    public override CheckPlacement Placement => CheckPlacement.Sandbox;

    public override SurrogateOptions BindOptions(CheckSpec spec, DeploymentPolicy policy)
    {
        var n = spec.Node;
        var d = Declaration; // explicit values, else the declared defaults
        return new SurrogateOptions(spec.Dataset ?? throw PolicyException.At(n, "surrogate needs a dataset"),
            d.Value(n, "samples").Int, d.Value(n, "maxDepth").Int!.Value, d.Value(n, "minSamplesLeaf").Int!.Value, d.Value(n, "holdout").Number!.Value);
    }

    public override Task<CheckResult> RunAsync(CheckContext ctx, CheckSpec spec, SurrogateOptions o, CancellationToken ct)
    {
        var r = NewResult(spec);
        var ds = ctx.LoadDataset(o.Dataset);
        var rng = MechanisticData.Rng(ctx.SeedFor(spec.Id));
        var rows = MechanisticData.ChooseRows(ds.Count, o.Samples, rng);
        var inputs = MechanisticData.Rows(ds.Inputs, rows);
        var (pred, runtime) = MechanisticData.Predict(ctx, inputs, ct);
        var x = SampleMatrix.FromTensor(inputs);

        var perm = Permutation.Of(rows.Length, rng);
        int nTest = (int)Math.Round(o.Holdout * rows.Length);
        if (nTest < 1 || nTest >= rows.Length)
            return Task.FromResult(CheckResult.Inconclusive(spec, $"{rows.Length} samples cannot be split with holdout {o.Holdout}: need at least one training and one held-out sample"));
        var test = perm.Take(nTest).Order().ToArray();
        var train = perm.Skip(nTest).Order().ToArray();
        int classes = pred.Max() + 1;
        var tree = DecisionTree.Fit(x.SelectRows(train), train.Select(i => pred[i]).ToArray(), classes, o.MaxDepth, o.MinSamplesLeaf);

        int agree = test.Count(i => tree.Predict(x.Row(i)) == pred[i]);
        int agreeTrain = train.Count(i => tree.Predict(x.Row(i)) == pred[i]);
        double fidelity = (double)agree / test.Length;
        var (lo, hi) = Statistics.WilsonInterval(agree, test.Length);
        r.Metrics["fidelity"] = fidelity;
        r.Metrics["fidelityLower"] = lo;
        r.Metrics["fidelityUpper"] = hi;
        r.Metrics["trainFidelity"] = (double)agreeTrain / train.Length;
        r.Metrics["heldOut"] = test.Length;
        r.Metrics["trained"] = train.Length;
        r.Metrics["depth"] = tree.Depth;
        r.Metrics["leaves"] = tree.Leaves;

        var shape = ds.Inputs.Shape.Skip(1).ToArray();
        string inputName = ctx.PrimaryInput.Name;
        string Feature(int f)
        {
            // Name a flat feature by its position in the input, e.g. input[0,6,7].
            var idx = new int[shape.Length];
            for (int a = shape.Length - 1, rem = f; a >= 0; a--) { idx[a] = rem % shape[a]; rem /= shape[a]; }
            return $"{inputName}[{string.Join(",", idx)}]";
        }
        var text = $"# surrogate decision tree for {ctx.Model.FileName}: depth {tree.Depth}, {tree.Leaves} leaves\n" +
                   $"# trained on the model's predictions for {train.Length} samples of '{o.Dataset}'; fidelity {fidelity.ToString("F4", CultureInfo.InvariantCulture)} on {test.Length} held out\n" +
                   tree.ToText(Feature, c => $"class {c}");
        r.Evidence.Add(ctx.Evidence.WriteText("surrogate-tree.txt", text, "the surrogate decision tree"));
        r.Details["tree"] = text;
        r.Runtime = runtime;
        r.Verdict = Verdict.Pass;
        Requirements.Apply(r, spec.Require);
        r.Summary = $"a depth-{tree.Depth} tree ({tree.Leaves} leaves) agrees with the model on {fidelity:P1} of {test.Length} held-out samples (95% CI {lo:P1}–{hi:P1})";
        r.Coverage = $"{rows.Length} samples of dataset '{o.Dataset}' ({train.Length} to fit, {test.Length} held out); fidelity holds on this data's distribution only";
        return Task.FromResult(r);
    }
}
