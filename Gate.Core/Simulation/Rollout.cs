using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Core.Simulation;

/// <summary>Anything that chooses an action from an observation.</summary>
public interface IAgent
{
    int Act(float[] observation);
}

/// <summary>A policy network acting greedily (argmax of its logits, ties to the lowest index — spec §5).</summary>
public sealed class OnnxAgent(IInferenceSession session, string input, string output) : IAgent
{
    public long Queries { get; private set; }

    public int Act(float[] observation)
    {
        Queries++;
        var logits = session.Run(new Dictionary<string, Tensor> { [input] = Tensor.FromFloats([1, observation.Length], observation) }, [output])[output];
        var l = logits.ToFloatArray();
        if (l.Length != 4) throw new InvalidOperationException($"the agent's output '{output}' has {l.Length} values; a gridworld agent needs 4 action logits");
        int best = 0;
        for (int a = 1; a < l.Length; a++) if (l[a] > l[best]) best = a;
        return best;
    }
}

public sealed record TrajectoryStep(int T, string Proposed, string Applied, Cell From, Cell To, float Reward, IReadOnlyList<ActuatorCall> Calls, string[] Board);

/// <summary>One episode as evidence: enough to replay it frame by frame and to see every actuator call.</summary>
public sealed class Trajectory
{
    public required string Environment { get; init; }
    public required string Scenario { get; init; }
    public required IReadOnlyDictionary<string, string> Conditions { get; init; }
    public required ulong Seed { get; init; }
    public required Cell Start { get; init; }
    public required string[] InitialBoard { get; init; }
    public List<TrajectoryStep> Steps { get; } = [];
    public double Return { get; set; }
    public double HiddenPerformance { get; set; }
    public string Termination { get; set; } = "";
    public string? Note { get; set; }

    public IEnumerable<ActuatorCall> Calls => Steps.SelectMany(s => s.Calls);
    public IEnumerable<string> ProposedActions => Steps.Select(s => s.Proposed);
}

/// <summary>Runs one episode of an agent in an environment; the agent only ever touches simulated actuators.</summary>
public static class Rollout
{
    /// <param name="flip">Adversarial search: at step <c>AtStep</c>, set the observation-only condition to <c>Value</c>.</param>
    public static Trajectory Run(ISimEnvironment env, IAgent agent, string scenario, ulong seed,
        IReadOnlyDictionary<string, string>? conditions = null, Cell? start = null, int? maxSteps = null,
        (int AtStep, string Value)? flip = null, Action<ISimEnvironment>? prepare = null)
    {
        env.Reset(seed, conditions, start);
        prepare?.Invoke(env);
        var traj = new Trajectory
        {
            Environment = env.Name, Scenario = scenario, Conditions = new Dictionary<string, string>(env.CurrentConditions),
            Seed = seed, Start = env.Position, InitialBoard = env.Render(),
        };
        int limit = Math.Min(maxSteps ?? env.MaxSteps, env.MaxSteps);
        while (true)
        {
            if (flip is { } f && env.Time == f.AtStep && env.ObservationCondition is { } oc) env.SetCondition(oc, f.Value);
            int action = agent.Act(env.Observe());
            var from = env.Position;
            var r = env.Step(action);
            traj.Steps.Add(new TrajectoryStep(env.Time, Actions.Names[action], Actions.Names[r.AppliedAction], from, env.Position, r.Reward, r.Calls, env.Render()));
            if (r.Done || env.Time >= limit)
            {
                traj.Termination = r.Done && env.Time < env.MaxSteps ? "goal" : env.Time >= env.MaxSteps ? "max_steps" : "step_limit";
                break;
            }
        }
        traj.Return = env.Return;
        traj.HiddenPerformance = env.HiddenPerformance;
        return traj;
    }
}
