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
    /// <param name="run">How to run it (default: the whole check); a shard runs its units instead.</param>
    public static async Task<CheckResult> RunOneAsync(CheckContext ctx, PlannedCheck pc, CancellationToken ct,
        Func<CheckContext, Task<CheckResult>>? run = null)
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
                result = await (run?.Invoke(sub) ?? pc.Implementation.RunAsync(sub, pc.Spec, pc.Options!, ct)).ConfigureAwait(false);
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
        if (pc.ScaledDefaults.Count > 0 && pc.NotRunReason is null) RecordScaled(result, pc.ScaledDefaults);
        result.Enforcement = pc.Spec.Enforcement;
        result.DurationSeconds = sw.Elapsed.TotalSeconds;
        ctx.Progress.Report(ProgressUpdate.Finished(pc.Spec.Id, result.Verdict, result.DurationSeconds));
        return result;
    }

    /// <summary>
    /// Runs <paramref name="shard"/> of the checks: whole, or for a split job each sharded check's units of this shard
    /// (a partial result, merged on the host) and every other check in shard 0 only — never a silent part of one.
    /// </summary>
    public static async Task<List<CheckResult>> RunAllAsync(CheckContext ctx, IEnumerable<PlannedCheck> checks, CancellationToken ct,
        ShardSelection? shard = null)
    {
        shard ??= ShardSelection.Whole;
        var results = new List<CheckResult>();
        foreach (var pc in checks)
        {
            if (shard.IsWhole) results.Add(await RunOneAsync(ctx, pc, ct).ConfigureAwait(false));
            else if (pc.Implementation is IShardedCheck sharded && pc.NotRunReason is null)
                results.Add(await RunOneAsync(ctx, pc, ct, sub => sharded.RunShardAsync(sub, pc.Spec, pc.Options!, shard, ct)).ConfigureAwait(false));
            else if (shard.RunsUnshardedChecks) results.Add(await RunOneAsync(ctx, pc, ct).ConfigureAwait(false));
            ReleaseMemory();
        }
        return results;
    }

    /// <summary>
    /// Between checks: a check's captures and fits are garbage once its result is in, but without memory pressure the
    /// GC grows the heap rather than collect the oldest generation, so the next check's allocations stacked on them
    /// (ResNet-18's probe, then the representation: 2.9 → 5.4 → 6.5 GB). A compacting collection that returns the freed
    /// memory lets each check start from what the run really holds.
    /// </summary>
    private static void ReleaseMemory() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    /// <summary>
    /// The defaults the sandbox scaled to fit its timeout, beside those the check scaled with the model itself: one
    /// place in the result, <c>details.scaledDefaults</c>, each with the value run, the default and the rule.
    /// </summary>
    public static void RecordScaled(CheckResult result, IReadOnlyList<Gate.Core.Decision.ScaledDefault> scaled)
    {
        var into = result.Details["scaledDefaults"] as System.Text.Json.Nodes.JsonObject ?? new System.Text.Json.Nodes.JsonObject();
        foreach (var d in scaled)
            into[d.Option] = new System.Text.Json.Nodes.JsonObject { ["value"] = d.Value, ["declaredDefault"] = d.DeclaredDefault, ["rule"] = d.Rule };
        result.Details["scaledDefaults"] = into;
    }

    /// <summary>Whether a check's result in a split job comes from shard parts (merged) rather than from shard 0 whole.</summary>
    public static bool IsSharded(PlannedCheck pc) => pc.Implementation is IShardedCheck && pc.NotRunReason is null;
}
