using Gate.Core.Policy;
using static Gate.Core.Policy.ReviewWords;
using Gate.Core.Checks;

namespace Gate.Core.Checks.Representation;

/// <summary>The <c>type: representation</c> options, metrics and meaning, declared once.</summary>
public static class RepresentationDeclaration
{
    public static readonly CheckDeclaration Value = new()
    {
        Type = "representation", Rank = 60,
        Purpose = "Summarises how the model represents data inside: how many units are silent (sparsity), how many independent directions the activations really use (effective rank) and how much information they can carry (coding rate). Sudden changes between releases point to a different internal solution.",
        Why = "Degenerate or collapsed representations signal a model that memorised or will generalise poorly, before it fails in deployment.",
        NotCovered = "No representation analysis: collapsed or degenerate internal features are not detected.",
        UsesDataset = true, NeedsDataset = true,
        Options =
        [
            Opt.Samples("Samples whose activations are measured (a seeded choice from the dataset).", defaultCap: 512),
            Opt.Shared("layers", "The activations measured: named tensors, auto (every hidden activation, GELUs written out as Erf included) or residual (the residual stream of an attention model: every tensor entering a layer normalisation).", "layers"),
            MechanisticData.PoolingOption,
            Opt.Number("sparsityThreshold", "An activation at or below this magnitude counts as silent.", min: 0) with { Default = 0.000001, Strength = Strength.Neutral },
            Opt.Number("codingRateEpsilon", "Distortion ε of the coding rate.", exclusiveMin: 0) with { Default = 0.5, Strength = Strength.Neutral },
        ],
        Metrics =
        [
            new("sparsity", "activation sparsity", MetricRange.Fraction),
            new("effectiveRank", "effective rank", MetricRange.NonNegative),
            new("codingRate", "coding rate", MetricRange.NonNegative),
        ],
        Review = Review,
    };

    /// <summary>Review: the data the representation is measured on.</summary>
    private static IEnumerable<string> Review(CheckSpec c, DeploymentPolicy p) => [$"Data: {Data(p, c, Value, "samples")}."];
}
