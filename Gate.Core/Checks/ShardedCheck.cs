using Gate.Core.Evidence;
using Gate.Core.Policy;

namespace Gate.Core.Checks;

/// <summary>
/// A check whose work splits into independent units (<see cref="CheckDeclaration.Units"/>): a shard runs a range of
/// them and returns one record per unit (<see cref="ShardPart"/>); <see cref="Merge"/> turns the records of all shards
/// into the result. An unsharded run is one shard merged at once, through the same code, so 1 and N shards agree.
/// </summary>
public interface IShardedCheck : ICheck
{
    /// <summary>Runs this shard's units; the result carries them in <c>Details[ShardPart.Key]</c> and their evidence files.</summary>
    Task<CheckResult> RunShardAsync(CheckContext context, CheckSpec spec, object options, ShardSelection shard, CancellationToken cancellationToken);

    /// <summary>
    /// The check's result from every shard's partial result (untrusted: validated here). Executes nothing; writes the
    /// merged evidence through <paramref name="context"/>. A shard without unit records makes the result INCONCLUSIVE.
    /// </summary>
    CheckResult Merge(CheckContext context, CheckSpec spec, object options, IReadOnlyList<CheckResult> partials);
}

/// <summary>Typed base for <see cref="IShardedCheck"/>: <see cref="Check{TOptions}.RunAsync"/> is one whole shard, merged.</summary>
public abstract class ShardedCheck<TOptions> : Check<TOptions>, IShardedCheck where TOptions : class
{
    /// <summary>Runs units [start, end) of this shard; returns the records and the evidence written per unit.</summary>
    protected abstract Task<CheckResult> RunUnitsAsync(CheckContext context, CheckSpec spec, TOptions options, ShardSelection shard, CancellationToken ct);

    /// <summary>The result from every unit's record (all shards, in unit order) and each shard's own accounting.</summary>
    protected abstract CheckResult MergeUnits(CheckContext context, CheckSpec spec, TOptions options, ShardParts parts, string? runtime);

    public override async Task<CheckResult> RunAsync(CheckContext context, CheckSpec spec, TOptions options, CancellationToken ct)
    {
        var part = await RunUnitsAsync(context, spec, options, ShardSelection.Whole, ct).ConfigureAwait(false);
        return Merge(context, spec, options, [part]);
    }

    Task<CheckResult> IShardedCheck.RunShardAsync(CheckContext context, CheckSpec spec, object options, ShardSelection shard, CancellationToken ct) =>
        RunUnitsAsync(context, spec, (TOptions)options, shard, ct);

    public CheckResult Merge(CheckContext context, CheckSpec spec, object options, IReadOnlyList<CheckResult> partials)
    {
        ShardParts parts;
        try { parts = new ShardParts(partials.Select(ShardPart.From)); }
        catch (InvalidDataException e) { return CheckResult.Inconclusive(spec, $"the shards' results cannot be merged: {e.Message}"); }
        CheckResult r;
        // The unit records came out of sandboxes: a record the merge cannot read makes the check INCONCLUSIVE, never a crash or a pass.
        try { r = MergeUnits(context, spec, (TOptions)options, parts, partials.Select(p => p.Runtime).FirstOrDefault(x => x is not null)); }
        catch (Exception e) when (e is InvalidDataException or GateInputException or InvalidOperationException or FormatException or KeyNotFoundException or NullReferenceException or ArgumentException)
        { return CheckResult.Inconclusive(spec, $"the shards' results cannot be merged: a unit record is malformed ({e.Message})"); }
        // Per-unit evidence first, in shard (= unit) order, then what the merge wrote: the same list for any N.
        var unitFiles = partials.OrderBy(p => ShardPart.From(p).Index).SelectMany(p => p.Evidence).ToList();
        var merged = r.Evidence.ToList();
        r.Evidence.Clear();
        r.Evidence.AddRange(unitFiles);
        r.Evidence.AddRange(merged.Where(f => !unitFiles.Contains(f)));
        r.Details.Remove(ShardPart.Key);
        return r;
    }

    /// <summary>A partial result carrying this shard's unit records.</summary>
    protected static CheckResult Partial(CheckSpec spec, ShardSelection shard, long total, IReadOnlyList<System.Text.Json.Nodes.JsonObject> units,
        System.Text.Json.Nodes.JsonObject state, string? runtime)
    {
        var (s, e) = shard.Range(total);
        var r = NewResult(spec);
        r.Runtime = runtime;
        r.Summary = $"{shard}: units {s}..{e} of {total}";
        r.Details[ShardPart.Key] = new ShardPart(shard.Index, shard.Count, s, e, total, units, state).ToJson();
        return r;
    }
}
