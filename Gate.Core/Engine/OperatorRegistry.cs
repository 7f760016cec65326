using System.Reflection;

namespace Gate.Core.Engine;

/// <summary>
/// Every <see cref="Operator"/> subclass in this assembly, found by reflection so that adding an operator is
/// adding one file.
/// </summary>
public static class OperatorRegistry
{
    /// <summary>
    /// The newest opset of the default ONNX domain whose operator versions this engine implements: the conformance
    /// fixtures (ONNX v1.22.0's node tests, ../shared/onnx-node-tests) go up to it. A model importing a newer opset
    /// may use operator versions whose behaviour changed after what the engine knows; lint warns about it.
    /// </summary>
    public const long NewestKnownOpset = 25;

    private static readonly Lazy<Dictionary<(string Domain, string OpType), Operator>> All = new(() =>
    {
        var d = new Dictionary<(string, string), Operator>();
        foreach (var t in typeof(Operator).Assembly.GetTypes())
        {
            if (t.IsAbstract || !typeof(Operator).IsAssignableFrom(t) || t.GetConstructor(Type.EmptyTypes) is null) continue;
            var op = (Operator)Activator.CreateInstance(t)!;
            if (!d.TryAdd((op.Domain, op.OpType), op))
                throw new InvalidOperationException($"operator {op.Domain}:{op.OpType} is implemented twice ({t.Name} and {d[(op.Domain, op.OpType)].GetType().Name})");
        }
        return d;
    });

    public static Operator? Find(string domain, string opType) =>
        All.Value.TryGetValue((domain == "ai.onnx" ? "" : domain, opType), out var op) ? op : null;

    public static IEnumerable<Operator> Operators => All.Value.Values;

    /// <summary>
    /// Why an operator met in exported models is not implemented, and what to do instead: said where the model is
    /// refused, so a user is not left guessing whether the gap is a bug.
    /// </summary>
    private static readonly Dictionary<string, string> KnownGaps = new(StringComparer.Ordinal);

    /// <summary>An unimplemented operator (spelled as <c>domain:OpType</c> outside the default domain) with the reason it is refused.</summary>
    public static string WithReason(string qualified)
    {
        if (KnownGaps.TryGetValue(qualified, out var why)) return $"{qualified} ({why})";
        if (qualified.StartsWith("com.microsoft:", StringComparison.Ordinal))
            return $"{qualified} (an ONNX Runtime contrib op, e.g. emitted by ORT's graph optimiser when it saved the model: export without ORT optimisation, or run it with runtime onnxruntime)";
        return qualified;
    }
}
