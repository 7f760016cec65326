namespace Gate.Core.Evidence;

/// <summary>
/// Progress of long work, e.g. "adversarial/pgd 1200/8000 queries". Shown as bars on a terminal and as plain lines in
/// CI logs. The executor also sends one <see cref="ProgressPhase.Started"/> and one <see cref="ProgressPhase.Finished"/>
/// update per check (Finished carries the verdict, and the duration as Done = Total seconds).
/// </summary>
public readonly record struct ProgressUpdate(string CheckId, string Task, double Done, double Total, string? Unit = null,
    ProgressPhase Phase = ProgressPhase.Working, Verdict? Verdict = null)
{
    public static ProgressUpdate Started(string checkId) => new(checkId, "check", 0, 1, null, ProgressPhase.Started);
    /// <summary>Before a check runs: its estimated seconds (Done) against its budget (Total; 0: none), the estimate in words as the task.</summary>
    public static ProgressUpdate Estimated(string checkId, string words, double seconds, double budgetSeconds) =>
        new(checkId, words, seconds, budgetSeconds, "s", ProgressPhase.Estimated);
    public static ProgressUpdate Finished(string checkId, Verdict verdict, double seconds) =>
        new(checkId, "check", seconds, seconds, "s", ProgressPhase.Finished, verdict);
}

public enum ProgressPhase { Working, Started, Finished, Estimated }
