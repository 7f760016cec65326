using Gate.Core.Checks.Adversarial;
using Gate.Core.Policy;
using static Gate.Core.Policy.ReviewWords;

namespace Gate.Core.Checks.Formal;

/// <summary>The <c>type: formal</c> options, metrics and meaning, declared once (ε is the shared <see cref="ThreatOptions"/> radius).</summary>
public static class FormalDeclaration
{
    public static readonly CheckDeclaration Value = new()
    {
        Type = "formal", Rank = 35,
        Purpose = "Proves, with sound bound propagation, that the model's outputs satisfy a property for every input in a region (e.g. the same class within ε of each test sample), or finds a counterexample: a guarantee where testing only samples.",
        Why = "Search can only find attacks; a proof shows their absence within the stated region.",
        NotCovered = "No formal proof: robustness, where tested, rests on search, which can miss attacks.",
        UsesDataset = true,
        Units = new("properties", "One property (a VNN-LIB file is one; local robustness: one per sample, the first N): its proof or counterexample search, seeded by the policy seed alone. " +
            "Every property gets the same share of the timeout (the total over all properties), whichever shard runs it."),
        Options =
        [
            Opt.Text("spec", "VNN-LIB property file, relative to the policy."),
            Opt.Mapping("property", "A property generated around each dataset sample: the same class within ε (L∞).",
                Opt.Enum("type", "The kind of property.", "local-robustness") with { Required = true },
                ThreatOptions.Epsilon()),
            Opt.Samples("Dataset samples to prove around (the first N).", defaultCap: 20),
            Opt.Enum("method", "Proof method: ibp (interval bounds), crown (linear bounds) or bab (branch and bound over crown).", "ibp", "crown", "bab") with { Default = "bab" },
            Opt.Duration("timeout", "Most time per property; an unfinished proof is undecided, never proved.") with { Default = "60s" },
        ],
        Metrics =
        [
            new("provedFraction", "fraction of inputs proved robust", MetricRange.Fraction),
            new("violations", "number of property violations found", MetricRange.NonNegative),
        ],
        Review = Review,
    };

    /// <summary>Review: the property (a VNN-LIB file, or local robustness within the bound threat set), method and timeout.</summary>
    private static IEnumerable<string> Review(CheckSpec c, DeploymentPolicy p)
    {
        var n = c.Node;
        var prop = n["property"] as PolicyMapping;
        string within = ThreatOptions.At(n, "property.epsilon", p) is { } box ? $" within {box.Words()}" : "";
        yield return $"Property: {Raw(prop, "type") ?? "from the VNN-LIB file " + Raw(n, "spec")}{within}; method {Value.Value(n, "method").Text}{(Raw(n, "timeout") is { } to ? $", timeout {to}" : "")}.";
        if (c.Dataset is not null) yield return $"Data: {Data(p, c, Value, "inputs")}.";
    }
}
