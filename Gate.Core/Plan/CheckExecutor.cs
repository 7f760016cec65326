using System.Diagnostics;
using Gate.Core.Checks;
using Gate.Core.Evidence;

namespace Gate.Core.Plan;

/// <summary>
/// Runs planned checks one after another and contains their faults: whatever a check throws becomes an
/// INCONCLUSIVE result with the reason, never a pass and never a crash of the gate.
/// </summary>
public static class CheckExecutor
{
    public static async Task<CheckResult> RunOneAsync(CheckContext ctx, PlannedCheck pc, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        ctx.Progress.Report(ProgressUpdate.Started(pc.Spec.Id));
        CheckResult result;
        if (pc.NotRunReason is { } why)
            result = CheckResult.Inconclusive(pc.Spec, why);
        else if (pc.Implementation is null)
            result = CheckResult.Inconclusive(pc.Spec, $"check type '{pc.Spec.Type}' is not implemented in this build of Gate");
        else
        {
            try
            {
                var sub = ctx.WithEvidence(ctx.Evidence.ForCheck(pc.Spec.Id));
                result = await pc.Implementation.RunAsync(sub, pc.Spec, pc.Options!, ct).ConfigureAwait(false);
                foreach (var f in sub.Evidence.Files) if (!result.Evidence.Contains(f)) result.Evidence.Add(f);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                result = CheckResult.Inconclusive(pc.Spec, "stopped: the wall-clock deadline was reached before the check finished");
            }
            catch (GateComponentMissingException e)
            {
                result = CheckResult.Inconclusive(pc.Spec, $"missing component: {e.Message}");
            }
            catch (Exception e)
            {
                result = CheckResult.Inconclusive(pc.Spec, $"check failed to run ({e.GetType().Name}): {e.Message}");
            }
        }
        result.Enforcement = pc.Spec.Enforcement;
        result.DurationSeconds = sw.Elapsed.TotalSeconds;
        ctx.Progress.Report(ProgressUpdate.Finished(pc.Spec.Id, result.Verdict, result.DurationSeconds));
        return result;
    }

    public static async Task<List<CheckResult>> RunAllAsync(CheckContext ctx, IEnumerable<PlannedCheck> checks, CancellationToken ct)
    {
        var results = new List<CheckResult>();
        foreach (var pc in checks) results.Add(await RunOneAsync(ctx, pc, ct).ConfigureAwait(false));
        return results;
    }
}
