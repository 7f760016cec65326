namespace Gate.Core.Checks;

/// <summary>Every <see cref="ICheck"/> implementation in Gate.Core, keyed by policy type name.</summary>
public static class CheckRegistry
{
    private static readonly Lazy<Dictionary<string, ICheck>> All = new(() =>
    {
        var d = new Dictionary<string, ICheck>(StringComparer.Ordinal);
        foreach (var t in typeof(ICheck).Assembly.GetTypes())
        {
            if (t.IsAbstract || !typeof(ICheck).IsAssignableFrom(t) || t.GetConstructor(Type.EmptyTypes) is null) continue;
            var c = (ICheck)Activator.CreateInstance(t)!;
            if (!d.TryAdd(c.Type, c)) throw new InvalidOperationException($"check type '{c.Type}' is implemented twice");
        }
        return d;
    });

    /// <summary>The implementation of a type, or null if this build cannot execute it (the check is then INCONCLUSIVE).</summary>
    public static ICheck? Find(string type) => All.Value.GetValueOrDefault(type);
    public static IReadOnlyCollection<string> Types => All.Value.Keys;
}
