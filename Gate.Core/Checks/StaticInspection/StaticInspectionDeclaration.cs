using Gate.Core.Policy;
using static Gate.Core.Policy.ReviewWords;

namespace Gate.Core.Checks.StaticInspection;

/// <summary>The <c>type: static-inspection</c> options and meaning, declared once.</summary>
public static class StaticInspectionDeclaration
{
    public static readonly CheckDeclaration Value = new()
    {
        Type = "static-inspection", Rank = 10,
        Purpose = "Inspects the model file without running it: which operators it uses, whether it carries custom code, control flow or external files, and how many parameters it has. A model outside the approved operator set may behave in ways no other check can see.",
        Why = "A model built from unexpected operators can behave in ways no test on data reveals; a file that pulls in external data or custom code is not the artefact that was reviewed.",
        NotCovered = "No blocking static inspection: the operators, custom domains and external data in the model file are not restricted.",
        Options =
        [
            Opt.Names("allowOps", "The only operators the model may use.") with { Strength = Strength.LowerIsStronger },
            Opt.Names("denyOps", "Operators the model must not use.") with { Strength = Strength.HigherIsStronger },
            Opt.Int("maxParameters", "Most parameters (weights) the model may have.", max: long.MaxValue) with
                { Type = new() { ["type"] = "integer", ["minimum"] = 1 }, Strength = Strength.LowerIsStronger, Unit = "parameters", WhenAbsent = "no limit", AbsentIsUnbounded = true },
            Opt.Bool("allowCustomDomains", "Whether operators from custom domains (custom code) are allowed.") with { Default = false, Strength = Strength.LowerIsStronger },
            Opt.Bool("allowControlFlow", "Whether control flow (If/Loop/Scan) is allowed.") with { Default = false, Strength = Strength.LowerIsStronger },
            Opt.Bool("allowExternalData", "Whether weights may live in external data files.") with { Default = false, Strength = Strength.LowerIsStronger },
            Opt.Number("maxWeightZScore", "Largest z-score a weight may have within its tensor (a planted outlier is a warning sign).", exclusiveMin: 0) with { Default = 1000, Strength = Strength.LowerIsStronger },
            Opt.Mapping("opset", "The ONNX opset range the model must import.",
                Opt.Int("min", "Lowest opset.", max: long.MaxValue) with { Type = new() { ["type"] = "integer", ["minimum"] = 1 } },
                Opt.Int("max", "Highest opset.", max: long.MaxValue) with { Type = new() { ["type"] = "integer", ["minimum"] = 1 } }),
        ],
        JudgesItself = _ => true,
        Review = Review,
    };

    /// <summary>Review: the operator lists, the parameter cap and what the model file may carry.</summary>
    private static IEnumerable<string> Review(CheckSpec c, DeploymentPolicy p)
    {
        var n = c.Node;
        if (n["allowOps"] is PolicySequence ops) yield return $"Allowed operators: only {string.Join(", ", ops.Items.Select(i => ((PolicyScalar)i).Value))}.";
        if (n["denyOps"] is PolicySequence deny) yield return $"Forbidden operators: {string.Join(", ", deny.Items.Select(i => ((PolicyScalar)i).Value))}.";
        if (Int(n, "maxParameters") is long mp) yield return $"At most {N(mp)} parameters.";
        foreach (var (key, words) in new[] { ("allowCustomDomains", "custom operator domains"), ("allowControlFlow", "control flow (If/Loop/Scan)"), ("allowExternalData", "external data files") })
            yield return $"{char.ToUpperInvariant(words[0])}{words[1..]}: {(Raw(n, key) == "true" ? "allowed" : "rejected")}.";
    }
}
