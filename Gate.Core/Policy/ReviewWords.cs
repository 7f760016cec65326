using System.Globalization;

namespace Gate.Core.Policy;

/// <summary>
/// The wording blocks that review sentences share, so that each check type's declaration (<see cref="CheckDeclaration.Review"/>)
/// phrases numbers, data and defaults the way <c>gate policy review</c> does everywhere else.
/// </summary>
public static class ReviewWords
{
    public static string N(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);
    public static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    public static long? Int(PolicyMapping? m, string key) => m?[key] is PolicyScalar { IsNumber: true } s ? s.AsLong() : null;
    public static string? Raw(PolicyMapping? m, string key) => m is null ? null : PolicyLoader.Str(m[key]);

    /// <summary>A policy node on one line, as the policy states it ("[a, b]", "{k: v}").</summary>
    public static string? Inline(PolicyNode? n) => n switch
    {
        null => null,
        PolicyScalar s => s.Value,
        PolicySequence q => "[" + string.Join(", ", q.Items.Select(Inline)) + "]",
        PolicyMapping m => "{" + string.Join(", ", m.Entries.Select(e => $"{e.Key.Value}: {Inline(e.Value)}")) + "}",
        _ => "?",
    };

    /// <summary>The data a check uses, as the policy names it (relative paths, so the text does not depend on where it is read).</summary>
    public static string Data(DeploymentPolicy p, CheckSpec c, CheckDeclaration decl, string noun)
    {
        // The count the check binds: explicit, else the type's declared default (a cap), else the whole dataset.
        string count = decl.SamplesWords(c.Node, noun);
        var dsNode = ((p.Root["spec"] as PolicyMapping)?["datasets"] as PolicyMapping)?[c.Dataset ?? ""] as PolicyMapping;
        string file = Inline(dsNode?["inputs"]) is { } f ? $" ({f}{(Raw(dsNode, "labels") is { } l ? $", labels {l}" : "")})" : "";
        return $"{count} from dataset '{c.Dataset}'{file}";
    }

    /// <summary>An option's value as the check binds it, marked "(default)" when the policy does not set it.</summary>
    public static string Declared(CheckDeclaration decl, PolicyMapping n, string key) =>
        decl.Value(n, key) is var v && v.IsDefault ? v.Decl.DefaultWords ?? "" : v.Text ?? "";

    /// <summary>The confidence level of the intervals a check reports, when the policy sets one.</summary>
    public static IEnumerable<string> Confidence(PolicyMapping n)
    {
        if (n["confidence"] is PolicyScalar conf)
            yield return $"Confidence level: {N(conf.AsDouble() * 100)}% for the intervals reported (and judged where a requirement says so).";
    }
}
