namespace Gate.Core.Policy;

/// <summary>
/// Every check type this process knows: those in Gate.Core (found by reflection) and any registered by a host
/// (<see cref="Register"/>, e.g. a test's own check type). The policy schema, the loader and the governance tools
/// read their declarations from here, so a new type needs no edit to any of them.
/// </summary>
public static class CheckTypes
{
    private static readonly object Gate = new();
    private static readonly Dictionary<string, ICheckType> BuiltInTypes = Discover();
    private static Dictionary<string, ICheckType> _all = new(BuiltInTypes, StringComparer.Ordinal);

    /// <summary>Bumped by every registration, so derived data (the generated schema) knows to rebuild.</summary>
    public static int Version { get; private set; }

    private static Dictionary<string, ICheckType> Discover()
    {
        var d = new Dictionary<string, ICheckType>(StringComparer.Ordinal);
        foreach (var t in typeof(ICheckType).Assembly.GetTypes())
        {
            if (t.IsAbstract || t.IsInterface || !typeof(ICheckType).IsAssignableFrom(t) || t.GetConstructor(Type.EmptyTypes) is null) continue;
            var c = (ICheckType)Activator.CreateInstance(t)!;
            if (!d.TryAdd(c.Declaration.Type, c)) throw new InvalidOperationException($"check type '{c.Declaration.Type}' is implemented twice");
        }
        return d;
    }

    /// <summary>Adds a check type from outside Gate.Core. Registering the same instance type again is a no-op; another type under a taken name is an error.</summary>
    public static void Register(ICheckType type)
    {
        lock (Gate)
        {
            var name = type.Declaration.Type;
            if (_all.TryGetValue(name, out var existing))
            {
                if (existing.GetType() == type.GetType()) return;
                throw new InvalidOperationException($"check type '{name}' is already implemented by {existing.GetType().FullName}");
            }
            _all = new Dictionary<string, ICheckType>(_all, StringComparer.Ordinal) { [name] = type };
            Version++;
        }
    }

    public static ICheckType? Find(string type) => _all.GetValueOrDefault(type);
    public static CheckDeclaration? Declaration(string type) => Find(type)?.Declaration;

    /// <summary>All known types' declarations, in listing order.</summary>
    public static IReadOnlyList<CheckDeclaration> All => Ordered(_all.Values);
    /// <summary>Gate.Core's own types only: what the committed schema file is generated from.</summary>
    public static IReadOnlyList<CheckDeclaration> BuiltIn => Ordered(BuiltInTypes.Values);

    private static List<CheckDeclaration> Ordered(IEnumerable<ICheckType> types) =>
        types.Select(t => t.Declaration).OrderBy(d => d.Rank).ThenBy(d => d.Type, StringComparer.Ordinal).ToList();
}
