using Gate.Core.Checks;
using Spectre.Console;

namespace Gate.Cli;

/// <summary>
/// Renders <see cref="ProgressUpdate"/>s (from host checks, or parsed from the sandbox runner's progress lines) as
/// one Spectre.Console bar per check and task. Falls back to running without bars when stderr is not a terminal.
/// </summary>
public static class ProgressBars
{
    public static async Task<T> RunAsync<T>(Func<IProgress<ProgressUpdate>, Task<T>> body)
    {
        if (!Cli.Err.Profile.Capabilities.Interactive) return await body(new Progress<ProgressUpdate>());
        T result = default!;
        await Cli.Err.Progress().AutoClear(true).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var tasks = new Dictionary<(string, string), ProgressTask>();
                // Synchronous reporter: the sandbox reader thread updates bars directly (Spectre tasks are thread-safe).
                var reporter = new SyncProgress(u =>
                {
                    lock (tasks)
                    {
                        if (!tasks.TryGetValue((u.CheckId, u.Task), out var t))
                            tasks[(u.CheckId, u.Task)] = t = ctx.AddTask(Markup.Escape($"{u.CheckId} {u.Task}"), maxValue: Math.Max(1, u.Total));
                        t.MaxValue = Math.Max(1, u.Total);
                        t.Value = Math.Clamp(u.Done, 0, t.MaxValue);
                    }
                });
                result = await body(reporter);
            });
        return result;
    }

    private sealed class SyncProgress(Action<ProgressUpdate> report) : IProgress<ProgressUpdate>
    {
        public void Report(ProgressUpdate value) => report(value);
    }
}
