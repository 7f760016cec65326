namespace Gate.Core.Simulation;

/// <summary>Policy environment names → environment classes, found by reflection (a new environment is one file).</summary>
public static class EnvironmentRegistry
{
    private static readonly Lazy<Dictionary<string, Type>> All = new(() =>
        typeof(ISimEnvironment).Assembly.GetTypes()
            .Where(t => !t.IsAbstract && typeof(ISimEnvironment).IsAssignableFrom(t) && t.GetConstructor(Type.EmptyTypes) is not null)
            .ToDictionary(t => ((ISimEnvironment)Activator.CreateInstance(t)!).Name));

    public static IReadOnlyCollection<string> Names => All.Value.Keys;

    public static ISimEnvironment Create(string name) =>
        All.Value.TryGetValue(name, out var t) ? (ISimEnvironment)Activator.CreateInstance(t)!
            : throw new GateInputException($"unknown simulation environment '{name}' (known: {string.Join(", ", Names)})");
}
