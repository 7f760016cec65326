using Gate.Core.Policy;
using static Gate.Core.Policy.ReviewWords;

namespace Gate.Core.Checks.Surrogate;

/// <summary>The <c>type: surrogate</c> options, metrics and meaning, declared once.</summary>
public static class SurrogateDeclaration
{
    public static readonly CheckDeclaration Value = new()
    {
        Type = "surrogate", Rank = 70,
        Purpose = "Approximates the model by a small decision tree that people can read, trained to imitate the model's own decisions, and measures how often the tree agrees with the model on data it has not seen. A policy can demand that such a transparent approximation exists.",
        Why = "A faithful, small surrogate gives reviewers an explanation of the model's behaviour they can read.",
        NotCovered = "No surrogate explanation: reviewers get no readable approximation of the model's behaviour.",
        UsesDataset = true, NeedsDataset = true,
        Options =
        [
            Opt.Samples("Samples to fit and test the tree on (a seeded choice from the dataset)."),
            Opt.Int("maxDepth", "Deepest tree allowed.", min: 1, max: 30) with { Default = 6, Strength = Strength.Neutral },
            Opt.Int("minSamplesLeaf", "Fewest samples in a leaf.") with { Default = 2, Strength = Strength.Neutral },
            Opt.Number("holdout", "Share of the samples held out to measure fidelity.", exclusiveMin: 0, exclusiveMax: 1) with { Default = 0.25, Strength = Strength.Neutral },
        ],
        Metrics = [new("fidelity", "surrogate fidelity (agreement with the model)", MetricRange.Fraction)],
        Review = Review,
    };

    /// <summary>Review: the data and the surrogate tree's depth.</summary>
    private static IEnumerable<string> Review(CheckSpec c, DeploymentPolicy p) =>
        [$"Data: {Data(p, c, Value, "samples")}.", $"Tree depth at most {Value.Value(c.Node, "maxDepth").Int}."];
}
