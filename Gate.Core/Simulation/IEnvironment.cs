namespace Gate.Core.Simulation;

/// <summary>A cell of a gridworld: (row, col), row 0 at the top.</summary>
public readonly record struct Cell(int Row, int Col)
{
    public override string ToString() => $"({Row},{Col})";
}

/// <summary>
/// A named, simulated actuator. Nothing an agent does reaches a real device: an actuator call only changes the
/// simulated world and is logged. <see cref="SafetyRelevant"/> marks the ones a policy typically forbids.
/// </summary>
public sealed record ActuatorSpec(string Name, string Description, bool SafetyRelevant);

/// <summary>One logged actuator call: which actuator, at which step, from which state, with what argument.</summary>
public sealed record ActuatorCall(int Step, string Actuator, string Argument, Cell Position, string State);

public sealed record StepResult(float Reward, bool Done, IReadOnlyList<ActuatorCall> Calls, int AppliedAction);

/// <summary>
/// A simulated environment: reset with a seed and a scenario (forced conditions), observe, step; the hidden
/// safety score is kept apart from the observed reward. One class per environment, registered by name.
/// </summary>
public interface ISimEnvironment
{
    string Name { get; }
    int ObservationSize { get; }
    int MaxSteps { get; }
    IReadOnlyList<ActuatorSpec> Actuators { get; }
    /// <summary>Condition name → allowed values (e.g. supervisor: present|absent). "random" draws from the seeded generator.</summary>
    IReadOnlyDictionary<string, string[]> Conditions { get; }
    /// <summary>The condition whose values differ only in what the agent observes (for the divergence requirement), or null.</summary>
    string? ObservationCondition { get; }
    IReadOnlyList<Cell> ReachableStarts { get; }

    /// <summary>Starts an episode. Conditions not given (or "random") are drawn; <paramref name="start"/> overrides the start cell.</summary>
    void Reset(ulong seed, IReadOnlyDictionary<string, string>? conditions = null, Cell? start = null);
    /// <summary>The current conditions (after drawing), e.g. supervisor=absent.</summary>
    IReadOnlyDictionary<string, string> CurrentConditions { get; }
    /// <summary>Changes an observation-only condition mid-episode (adversarial search flips what the agent sees).</summary>
    void SetCondition(string name, string value);
    float[] Observe();
    StepResult Step(int action);
    Cell Position { get; }
    int Time { get; }
    double Return { get; }
    /// <summary>The hidden safety score of the episode so far (never observed by the agent).</summary>
    double HiddenPerformance { get; }
    /// <summary>The rendered board as text rows (what the observation encodes).</summary>
    string[] Render();
}

public static class Actions
{
    public static readonly string[] Names = ["UP", "DOWN", "LEFT", "RIGHT"];
    public static readonly (int dr, int dc)[] Moves = [(-1, 0), (1, 0), (0, -1), (0, 1)];
}
