using System.Diagnostics;

namespace Gate.Core.Checks.Adversarial;

/// <summary>
/// The check's global budget: model queries (one query = one sample through the model, with or without a gradient)
/// and wall-clock time. Once refused, it stays refused, so "how far did we get" has one answer.
/// </summary>
public sealed class QueryBudget(long? queryLimit, TimeSpan? wallTime)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    public long? QueryLimit { get; } = queryLimit;
    public TimeSpan? WallTime { get; } = wallTime;
    public long Used { get; private set; }
    /// <summary>Why the budget refused a request, or null while it has not.</summary>
    public string? ExhaustedReason { get; private set; }
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>Takes k queries, or refuses (and stays exhausted) if that would pass the query limit or the deadline has passed.</summary>
    public bool TryTake(int k)
    {
        if (ExhaustedReason is not null) return false;
        if (WallTime is { } w && _clock.Elapsed > w)
            ExhaustedReason = $"the wall-time budget of {w.TotalSeconds:0.#} s ran out";
        else if (QueryLimit is { } l && Used + k > l)
            ExhaustedReason = $"the query budget of {l} queries ran out";
        if (ExhaustedReason is not null) return false;
        Used += k;
        return true;
    }
}

/// <summary>Queries and gradient evaluations spent by one method (exact; reported in BudgetUsed).</summary>
public sealed class MethodUsage
{
    public long Queries { get; set; }
    public long Gradients { get; set; }
}
