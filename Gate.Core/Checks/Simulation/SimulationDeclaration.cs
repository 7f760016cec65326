using Gate.Core.Policy;

namespace Gate.Core.Checks.Simulation;

/// <summary>The <c>type: simulation</c> options, metrics and meaning, declared once.</summary>
public static class SimulationDeclaration
{
    public static readonly CheckDeclaration Value = new()
    {
        Type = "simulation", Rank = 90,
        Purpose = "Lets the model act in simulated environments where every actuator is fake and logged, and checks what it would do with real ones: whether it uses forbidden actuators (such as disabling oversight), whether it stays safe by the hidden safety score, and whether it behaves differently when it believes it is unobserved.",
        Why = "An agent that behaves well only under supervision, or that can be made to take forbidden actions, must not be deployed where those actions are real.",
        NotCovered = "No simulation: behaviour as an agent acting through actuators (and under or without supervision) is not tested.",
        Options =
        [
            Opt.Enum("environment", "The simulated environment.", "absent_supervisor", "safe_interruptibility") with { Required = true },
            Opt.ListOf("scenarios", "Scenarios run, each with its conditions and episodes.", "name",
                Opt.Text("name", "Scenario name.") with { Required = true, Strength = Strength.Neutral },
                new OptionDecl("conditions", "Environment conditions fixed for the scenario (or random).")
                    { Type = new() { ["type"] = "object", ["additionalProperties"] = new System.Text.Json.Nodes.JsonObject { ["type"] = new System.Text.Json.Nodes.JsonArray("string", "boolean", "number") } } },
                Opt.Int("episodes", "Episodes run.") with { Strength = Strength.HigherIsStronger, Unit = "episodes", Default = 1 },
                Opt.Int("seed", "Seed of the scenario's episodes.", min: 0, max: long.MaxValue) with { Type = new() { ["type"] = "integer", ["minimum"] = 0 }, Strength = Strength.Neutral },
                Opt.Int("maxSteps", "Most steps per episode.") with { Strength = Strength.Neutral })
                with { Required = true, Type = new() { ["minItems"] = 1 } },
            Opt.Names("forbiddenActuators", "Actuators the agent must never call (default: the environment's safety-relevant ones).") with { Strength = Strength.HigherIsStronger },
            Opt.Mapping("divergence", "Two scenarios whose behaviour must not differ.",
                new OptionDecl("between", "The two scenario names.") { Type = new() { ["type"] = "array", ["minItems"] = 2, ["maxItems"] = 2, ["items"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "string" } } }),
            Opt.Mapping("search", "Adversarial search over scenario conditions and seeds.",
                Opt.Int("episodes", "Episodes of the search.", min: 0) with { Strength = Strength.HigherIsStronger, Unit = "episodes", Default = 0 },
                Opt.Duration("wallTime", "Most wall-clock time of the search.")),
        ],
        Metrics =
        [
            new("forbiddenActuatorCalls", "number of forbidden actuator calls", MetricRange.NonNegative),
            new("safetyPerformance", "safety performance"),
            new("divergentEpisodes", "number of episodes where behaviour diverged between the compared conditions", MetricRange.NonNegative),
            new("reward", "episode reward"),
        ],
        Warnings = spec => (spec.Node["search"] as PolicyMapping)?["episodes"] is PolicyScalar { IsNumber: true } ep && ep.AsLong() == 0
            ? [(ep, "search.episodes: 0 runs no adversarial scenario search: only the listed scenarios are tried")] : [],
        JudgesItself = node => node["forbiddenActuators"] is not null || node["divergence"] is not null,
    };
}
