using Gate.Core.Policy;
using static Gate.Core.Policy.ReviewWords;
using Gate.Core.Checks;

namespace Gate.Core.Checks.LinearProbe;

/// <summary>The <c>type: linear-probe</c> options, metrics and meaning, declared once.</summary>
public static class LinearProbeDeclaration
{
    public static readonly CheckDeclaration Value = new()
    {
        Type = "linear-probe", Rank = 40,
        Purpose = "Tests whether a concept (for example 'a supervisor is watching') can be read off the model's hidden activations by a linear classifier. A policy can demand that a concept is encoded (the model attends to what it should) or that it is not (the model does not track what it should ignore).",
        Why = "It shows what the model represents internally, e.g. whether it tracks a safety-relevant fact, beyond what its outputs reveal on the test data.",
        NotCovered = "No linear probe: what the model represents internally is not examined.",
        UsesDataset = true, NeedsDataset = true, NeedsLabels = true,
        Units = new("layers", "One probed layer (in the order the layers resolve): its activations and its cross-validated probe, with folds seeded by the policy seed alone. " +
            "The probe has no query or time budget to split."),
        Options =
        [
            Opt.Text("concept", "Plain-language name of the concept the labels encode.") with { Strength = Strength.Neutral },
            Opt.Shared("layers", "The activations probed: named tensors, auto (every hidden activation, GELUs written out as Erf included) or residual (the residual stream of an attention model: every tensor entering a layer normalisation).", "layers"),
            MechanisticData.PoolingOption,
            Opt.Int("folds", "Cross-validation folds.", min: 2, max: 50) with { Default = 5, Strength = Strength.Neutral },
            Opt.Number("regularization", "Inverse L2 strength C, as in scikit-learn.", exclusiveMin: 0) with { Default = 1.0, Strength = Strength.Neutral },
        ],
        Metrics = [new("accuracy", "probe accuracy (fraction of held-out samples whose concept label the probe reads correctly)", MetricRange.Fraction)],
        RequireMandatory = true,
        Review = Review,
    };

    /// <summary>Review: the concept data, the layers probed and the cross-validation.</summary>
    private static IEnumerable<string> Review(CheckSpec c, DeploymentPolicy p)
    {
        var n = c.Node;
        yield return $"Data: {Data(p, c, Value, "labelled samples")}; concept: {Raw(n, "concept") ?? "as labelled"}.";
        yield return $"Layers probed: {(n["layers"] is PolicySequence ls ? string.Join(", ", ls.Items.Select(i => ((PolicyScalar)i).Value)) : "chosen automatically")}; {Value.Value(n, "folds").Int}-fold cross-validation.";
    }
}
