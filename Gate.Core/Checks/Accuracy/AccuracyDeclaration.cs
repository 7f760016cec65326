using Gate.Core.Policy;
using static Gate.Core.Policy.ReviewWords;

namespace Gate.Core.Checks.Accuracy;

/// <summary>The <c>type: accuracy</c> options, metrics and meaning, declared once.</summary>
public static class AccuracyDeclaration
{
    public static readonly CheckDeclaration Value = new()
    {
        Type = "accuracy", Rank = 20,
        Purpose = "Measures how often the model's top prediction matches the label on a held-out dataset: the baseline competence every other guarantee is relative to.",
        Why = "It is the baseline competence; every robustness number is relative to it, and a model that regressed here should not ship whatever else it passes.",
        NotCovered = "No blocking accuracy check: baseline competence on held-out data is not required.",
        UsesDataset = true, NeedsDataset = true, NeedsLabels = true, ClassLabels = true, ReadsNonTensorOutputs = true,
        Options =
        [
            Opt.Samples("Labelled samples to classify (the first N of the dataset)."),
            Opt.Number("confidence", "Confidence level of the reported interval; with it, a requirement judges the pessimistic end of the interval unless it names a bound.",
                exclusiveMin: 0, exclusiveMax: 1) with { Strength = Strength.HigherIsStronger },
        ],
        Metrics = [new("accuracy", "accuracy (fraction of inputs classified correctly)", MetricRange.Fraction) { Estimated = true }],
        PrimaryMetric = "accuracy", RequireMandatory = true,
        Review = Review,
    };

    /// <summary>Review: the labelled data and the confidence level.</summary>
    private static IEnumerable<string> Review(CheckSpec c, DeploymentPolicy p) =>
        [$"Data: {Data(p, c, Value, "labelled samples")}.", .. Confidence(c.Node)];
}
