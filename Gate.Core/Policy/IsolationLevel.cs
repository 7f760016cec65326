using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gate.Core.Policy;

/// <summary>
/// How strongly the model is separated from the host, weakest first: the enum's order IS the strength order, and
/// the one place it is written. A policy's <c>sandbox.isolation</c> is a floor; a backend reports the level it
/// achieves; the selector and the decision compare the two with <see cref="IsolationLevels.Meets"/>.
/// Names in policies, decision.json and messages are the kebab-case member names ("process-netns").
/// </summary>
[JsonConverter(typeof(IsolationLevelJsonConverter))]
public enum IsolationLevel
{
    /// <summary>In the gate's own process (tests, <c>--sandbox none</c>): meets no policy.</summary>
    None = 0,
    /// <summary>A child process with rlimits (and another user when the host runs as root).</summary>
    Process = 1,
    /// <summary>A child process in its own, empty network namespace.</summary>
    ProcessNetns = 2,
    /// <summary>A locked-down container (no network, read-only root, no capabilities, cgroup limits).</summary>
    Container = 3,
}

public static class IsolationLevels
{
    /// <summary>Every level, weakest first.</summary>
    public static IReadOnlyList<IsolationLevel> All { get; } = Enum.GetValues<IsolationLevel>().Order().ToArray();

    /// <summary>The levels a policy may require (everything but <see cref="IsolationLevel.None"/>), weakest first.</summary>
    public static IReadOnlyList<IsolationLevel> PolicyFloors { get; } = All.Where(l => l != IsolationLevel.None).ToArray();

    /// <summary>"process-netns" for <see cref="IsolationLevel.ProcessNetns"/>.</summary>
    public static string Name(this IsolationLevel level) => JsonNamingPolicy.KebabCaseLower.ConvertName(level.ToString());

    public static bool TryParse(string? name, out IsolationLevel level)
    {
        foreach (var l in All)
            if (l.Name() == name) { level = l; return true; }
        level = default;
        return false;
    }

    /// <summary>Whether a backend achieving <paramref name="achieved"/> satisfies a policy floor of <paramref name="floor"/>.</summary>
    public static bool Meets(this IsolationLevel achieved, IsolationLevel floor) => achieved >= floor;
}

/// <summary>Writes and reads a level by its <see cref="IsolationLevels.Name"/>; an unknown name is a JSON error, never a default.</summary>
public sealed class IsolationLevelJsonConverter : JsonConverter<IsolationLevel>
{
    public override IsolationLevel Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String && IsolationLevels.TryParse(reader.GetString(), out var l) ? l
            : throw new JsonException($"not an isolation level (expected one of {string.Join(", ", IsolationLevels.All.Select(x => x.Name()))})");

    public override void Write(Utf8JsonWriter writer, IsolationLevel value, JsonSerializerOptions options) => writer.WriteStringValue(value.Name());
}
