using Gate.Core.Policy;

namespace Gate.Core.Checks;

/// <summary>The executable check types, keyed by policy type name: the <see cref="CheckTypes"/> that implement <see cref="ICheck"/>.</summary>
public static class CheckRegistry
{
    /// <summary>The implementation of a type, or null if this build cannot execute it (the check is then INCONCLUSIVE).</summary>
    public static ICheck? Find(string type) => CheckTypes.Find(type) as ICheck;
    public static IReadOnlyCollection<string> Types => CheckTypes.All.Select(d => d.Type).Where(t => Find(t) is not null).ToList();
}
