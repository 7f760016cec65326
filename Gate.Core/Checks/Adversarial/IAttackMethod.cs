using Gate.Core.Policy;

namespace Gate.Core.Checks.Adversarial;

/// <summary>One entry of the policy's <c>search:</c> list: a method and its per-sample budget.</summary>
public sealed record MethodSpec(string Method, int? Steps, int? Restarts, double? StepSize, int? Queries, double? PInit, PolicyNode Node);

/// <summary>
/// An adversarial search method. Implementations are stateless and found by reflection, so a new method is one
/// new class (plus its name in the schema's <c>method</c> enum). A method searches the open samples of a batch,
/// evaluating the model only through the batch, which counts every query and records every admitted point that
/// meets the goal; it marks a sample completed once its full per-sample budget was spent on it.
/// </summary>
public interface IAttackMethod
{
    /// <summary>The policy's <c>method:</c> value.</summary>
    string Name { get; }
    /// <summary>True when it needs gradients (built-in engine); false for score-based methods on the production runtime.</summary>
    bool WhiteBox { get; }
    /// <summary>Rejects options that make no sense for this method (PolicyException at the option's line).</summary>
    void Validate(MethodSpec spec);
    /// <summary>Most queries it spends on one sample; used for progress totals.</summary>
    long QueriesPerSample(MethodSpec spec);
    /// <summary>
    /// The per-sample budget knob a policy may leave at its default (steps, queries): its key, default and the floor
    /// below which the plan does not lower it to fit the sandbox (<c>Plan.BudgetScaling</c>); null: none.
    /// </summary>
    (string Key, int Default, int Floor)? DefaultBudget => null;
    /// <summary>For the coverage statement, e.g. "PGD 40×5".</summary>
    string Describe(MethodSpec spec);
    void Attack(AttackBatch batch, MethodSpec spec, CancellationToken ct);
}

public static class AttackMethods
{
    private static readonly Dictionary<string, IAttackMethod> ByName = typeof(IAttackMethod).Assembly.GetTypes()
        .Where(t => typeof(IAttackMethod).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false } && t.GetConstructor(Type.EmptyTypes) is not null)
        .Select(t => (IAttackMethod)Activator.CreateInstance(t)!)
        .ToDictionary(m => m.Name, StringComparer.Ordinal);

    public static IAttackMethod? Find(string name) => ByName.GetValueOrDefault(name);
    public static IEnumerable<string> Names => ByName.Keys.Order(StringComparer.Ordinal);
}
