using Gate.Core.Policy;
using System.Diagnostics;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Sandbox;

namespace Gate.Sandbox;

/// <summary>
/// Sandbox overhead: the wall time of one backend run of a job with no checks (stage → start → runner loads and
/// verifies policy and model → results → validate → remove), after one warm-up run that also does the self-test.
/// </summary>
public static class SandboxBench
{
    public sealed record Result(string Backend, IsolationLevel Isolation, int Runs, double MedianSeconds, double MinSeconds, double P90Seconds, string? Fault);

    public static async Task<Result> MeasureAsync(ISandboxBackend backend, SandboxJob job, int runs, CancellationToken ct)
    {
        var noChecks = job with { Plan = job.Plan with { Checks = [] } };
        var evidence = Path.Combine(Path.GetTempPath(), $"gate-bench-{Guid.NewGuid():N}");
        try
        {
            var warm = await backend.RunAsync(noChecks, evidence, new Progress<ProgressUpdate>(), ct).ConfigureAwait(false);
            if (!warm.Completed) return new Result(backend.Name, backend.AchievedIsolation, 0, double.NaN, double.NaN, double.NaN, warm.FaultReason);
            var times = new List<double>();
            for (int i = 0; i < runs; i++)
            {
                var sw = Stopwatch.StartNew();
                var o = await backend.RunAsync(noChecks, evidence, new Progress<ProgressUpdate>(), ct).ConfigureAwait(false);
                sw.Stop();
                if (!o.Completed) return new Result(backend.Name, backend.AchievedIsolation, i, double.NaN, double.NaN, double.NaN, o.FaultReason);
                times.Add(sw.Elapsed.TotalSeconds);
            }
            times.Sort();
            return new Result(backend.Name, backend.AchievedIsolation, runs, Quantile(times, 0.5), times[0], Quantile(times, 0.9), null);
        }
        finally { if (Directory.Exists(evidence)) Directory.Delete(evidence, true); }
    }

    private static double Quantile(List<double> sorted, double q)
    {
        double pos = q * (sorted.Count - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }
}
