namespace Gate.Core.Simulation;

/// <summary>Shared gridworld mechanics of specs/gridworlds.md: maps, walls, one-hot rendering, the step counter.</summary>
public abstract class GridWorld : ISimEnvironment
{
    protected SplitMix64 Rng = new(0);
    protected readonly Dictionary<string, string> Current = new();

    public abstract string Name { get; }
    public int MaxSteps => 100;
    public abstract IReadOnlyList<ActuatorSpec> Actuators { get; }
    public abstract IReadOnlyDictionary<string, string[]> Conditions { get; }
    public abstract string? ObservationCondition { get; }
    public abstract IReadOnlyList<Cell> ReachableStarts { get; }
    protected abstract Cell Start { get; }
    /// <summary>Plane order of the one-hot encoding (spec §4).</summary>
    protected abstract char[] Planes { get; }
    /// <summary>The map of the current state, before the agent is drawn.</summary>
    protected abstract string[] BaseMap();
    protected abstract void DrawConditions(IReadOnlyDictionary<string, string>? forced);

    public Cell Position { get; protected set; }
    public int Time { get; protected set; }
    public double Return { get; protected set; }
    public abstract double HiddenPerformance { get; }
    public IReadOnlyDictionary<string, string> CurrentConditions => Current;
    public int ObservationSize => Planes.Length * BaseMap().Length * BaseMap()[0].Length;

    public virtual void Reset(ulong seed, IReadOnlyDictionary<string, string>? conditions = null, Cell? start = null)
    {
        Rng = new SplitMix64(seed);
        Current.Clear();
        foreach (var (k, v) in conditions ?? new Dictionary<string, string>())
        {
            if (!Conditions.TryGetValue(k, out var allowed)) throw new GateInputException($"environment {Name} has no condition '{k}' (conditions: {string.Join(", ", Conditions.Keys)})");
            if (v != "random" && !allowed.Contains(v)) throw new GateInputException($"environment {Name}: condition {k} must be one of {string.Join(", ", allowed)} or random, got '{v}'");
        }
        DrawConditions(conditions);
        Time = 0;
        Return = 0;
        if (start is Cell s && !ReachableStarts.Contains(s)) throw new GateInputException($"environment {Name}: {s} is not a reachable start cell");
        Position = start ?? Start;
    }

    public virtual void SetCondition(string name, string value)
    {
        if (name != ObservationCondition) throw new InvalidOperationException($"{name} is not an observation-only condition of {Name}");
        Current[name] = value;
    }

    protected bool IsWall(Cell c) => BaseMap()[c.Row][c.Col] == '#';

    protected Cell Move(Cell from, int action)
    {
        var (dr, dc) = Actions.Moves[action];
        var to = new Cell(from.Row + dr, from.Col + dc);
        return IsWall(to) ? from : to;
    }

    public string[] Render()
    {
        var rows = BaseMap().Select(r => r.ToCharArray()).ToArray();
        if (rows[Start.Row][Start.Col] == 'A') rows[Start.Row][Start.Col] = ' ';
        rows[Position.Row][Position.Col] = 'A';
        return rows.Select(r => new string(r)).ToArray();
    }

    public float[] Observe()
    {
        var board = Render();
        int h = board.Length, w = board[0].Length;
        var obs = new float[Planes.Length * h * w];
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
            {
                int plane = Array.IndexOf(Planes, board[r][c]);
                if (plane < 0) throw new InvalidOperationException($"{Name}: character '{board[r][c]}' has no plane");
                obs[plane * h * w + r * w + c] = 1f;
            }
        return obs;
    }

    public abstract StepResult Step(int action);

    protected static void CheckAction(int action)
    {
        if (action is < 0 or > 3) throw new ArgumentOutOfRangeException(nameof(action), $"action {action} is not one of 0..3");
    }

    protected string StateText() => $"{Position} t={Time} " + string.Join(" ", Current.Select(kv => $"{kv.Key}={kv.Value}"));
}
