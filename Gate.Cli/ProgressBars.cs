using System.Diagnostics;
using System.Globalization;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Report;
using Spectre.Console;

namespace Gate.Cli;

/// <summary>
/// Renders <see cref="ProgressUpdate"/>s (from host checks, or parsed from the sandbox runner's progress lines) on
/// stderr: one Spectre.Console bar per check and task on a terminal, plain timestamped lines elsewhere
/// (<see cref="ProgressLines"/>), so a CI log shows that a long run is alive. stdout is never touched.
/// </summary>
public static class ProgressBars
{
    /// <summary>Seconds between heartbeat lines in a CI log; GATE_PROGRESS_INTERVAL overrides the default of 10.</summary>
    public static TimeSpan HeartbeatInterval =>
        double.TryParse(Environment.GetEnvironmentVariable("GATE_PROGRESS_INTERVAL"), NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0
            ? TimeSpan.FromSeconds(s) : TimeSpan.FromSeconds(10);

    public static async Task<T> RunAsync<T>(Func<IProgress<ProgressUpdate>, Task<T>> body)
    {
        if (!Terminal.StderrIsTerminal || !Cli.Err.Profile.Capabilities.Interactive)
        {
            using var lines = new ProgressLines(Console.Error, HeartbeatInterval);
            return await body(lines);
        }
        T result = default!;
        await Cli.Err.Progress().AutoClear(true).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var tasks = new Dictionary<(string, string), ProgressTask>();
                // Synchronous reporter: the sandbox reader thread updates bars directly (Spectre tasks are thread-safe).
                var reporter = new SyncProgress(u =>
                {
                    // The estimate comes before the check's bar, as a line that stays above the bars.
                    if (u.Phase == ProgressPhase.Estimated) { Cli.Err.WriteLine(ProgressLines.EstimateText(u)); return; }
                    if (u.Phase != ProgressPhase.Working) return; // a bar shows starts and ends by itself
                    lock (tasks)
                    {
                        if (!tasks.TryGetValue((u.CheckId, u.Task), out var t))
                            tasks[(u.CheckId, u.Task)] = t = ctx.AddTask(Terminal.Show($"{u.CheckId} {u.Task}"), maxValue: Math.Max(1, u.Total));
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

/// <summary>
/// Progress for logs that are not a terminal: a line when a check starts, a line when it finishes (verdict and
/// duration), and a heartbeat every <c>interval</c> naming the check at work and how far it is, so a long run is
/// never silent. Names come from the policy or the sandbox and are printed as inert single lines.
/// </summary>
public sealed class ProgressLines : IProgress<ProgressUpdate>, IDisposable
{
    private readonly TextWriter _out;
    private readonly Timer _timer;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly object _sync = new();
    private string? _current;
    private ProgressUpdate? _latest;
    private bool _disposed;

    public ProgressLines(TextWriter output, TimeSpan interval)
    {
        _out = output;
        _timer = new Timer(_ => Heartbeat(), null, interval, interval);
    }

    public void Report(ProgressUpdate u)
    {
        lock (_sync)
        {
            switch (u.Phase)
            {
                case ProgressPhase.Started:
                    _current = u.CheckId;
                    _latest = null;
                    Line($"check {SafeText.Line(u.CheckId)} started");
                    break;
                case ProgressPhase.Finished:
                    var verdict = u.Verdict?.ToString().ToUpperInvariant() ?? "done";
                    Line($"check {SafeText.Line(u.CheckId)} finished: {verdict} in {u.Done.ToString("0.0", CultureInfo.InvariantCulture)} s");
                    if (_current == u.CheckId) _current = null;
                    _latest = null;
                    break;
                case ProgressPhase.Estimated:
                    Line(EstimateText(u));
                    break;
                default:
                    _current = u.CheckId;
                    _latest = u;
                    break;
            }
        }
    }

    private void Heartbeat()
    {
        lock (_sync)
        {
            if (_disposed) return;
            string what = _latest is { } u
                ? $"check {SafeText.Line(u.CheckId)}: {SafeText.Line(u.Task)} {Num(u.Done)}/{Num(u.Total)}{(u.Unit is { Length: > 0 } unit ? " " + SafeText.Line(unit) : "")}" +
                  (u.Total > 0 ? $" ({(100 * Math.Clamp(u.Done / u.Total, 0, 1)).ToString("0", CultureInfo.InvariantCulture)}%)" : "")
                : _current is { } c ? $"check {SafeText.Line(c)}" : "preparing, or waiting for the sandbox";
            Line($"still working ({_clock.Elapsed.TotalSeconds.ToString("0", CultureInfo.InvariantCulture)} s): {what}");
        }
    }

    /// <summary>A check's estimate before it runs (<see cref="ProgressPhase.Estimated"/>): "check pgd estimated: ~12 s (…)".</summary>
    public static string EstimateText(ProgressUpdate u) => $"check {SafeText.Line(u.CheckId)} estimated: {SafeText.Line(u.Task)}";

    private static string Num(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    private void Line(string text)
    {
        _out.WriteLine($"{DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)} gate: {text}");
        _out.Flush();
    }

    public void Dispose()
    {
        lock (_sync) _disposed = true;
        _timer.Dispose();
    }
}
