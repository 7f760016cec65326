using System.Text.Json.Nodes;
using Gate.Core.Evidence;

namespace Gate.Core.Checks;

/// <summary>
/// Which part of a job one shard executes: shard <see cref="Index"/> of <see cref="Count"/>. A check that declares
/// work units (<see cref="Policy.WorkUnits"/>) runs units [⌊T·i/N⌋, ⌊T·(i+1)/N⌋) of its T; a check that does not runs
/// whole in shard 0 and not at all elsewhere. Every unit's randomness derives from the policy seed and the unit's
/// index only, so the merged result does not depend on N.
/// </summary>
public sealed record ShardSelection(int Index, int Count)
{
    /// <summary>The whole job in one shard: today's single-machine run.</summary>
    public static ShardSelection Whole { get; } = new(0, 1);

    public bool IsWhole => Count == 1;

    /// <summary>Checks without work units run here, whole.</summary>
    public bool RunsUnshardedChecks => Index == 0;

    /// <summary>This shard's units of <paramref name="total"/>: contiguous, disjoint across shards, covering all of them.</summary>
    public (long Start, long End) Range(long total) => (total * Index / Count, total * (Index + 1) / Count);

    /// <summary>This shard's share of a budget over <paramref name="total"/> units, in proportion to its units (rounded down, at least 0).</summary>
    public long Share(long budget, long total)
    {
        var (s, e) = Range(total);
        return total == 0 ? (Index == 0 ? budget : 0) : (long)Math.Floor((double)budget * (e - s) / total);
    }

    public void Validate()
    {
        if (Count < 1 || Index < 0 || Index >= Count)
            throw new GateInputException($"shard {Index} of {Count} does not exist (shards are numbered 0 to N-1, N ≥ 1)");
    }

    public override string ToString() => $"shard {Index} of {Count}";
}

/// <summary>
/// What one shard of a sharded check returns: its unit range and one JSON record per unit, in unit order, plus its
/// own accounting (budget used, exhausted or not). Travels in the partial result's details as <see cref="Key"/>.
/// </summary>
public sealed record ShardPart(int Index, int Count, long Start, long End, long Total, IReadOnlyList<JsonObject> Units, JsonObject State)
{
    public const string Key = "shardPart";

    public JsonObject ToJson() => new()
    {
        ["index"] = Index, ["count"] = Count, ["start"] = Start, ["end"] = End, ["total"] = Total,
        ["units"] = new JsonArray(Units.Select(u => (JsonNode)u.DeepClone()).ToArray()), ["state"] = State.DeepClone(),
    };

    /// <summary>Reads a part back from a result that came out of a sandbox; anything malformed → <see cref="InvalidDataException"/>.</summary>
    public static ShardPart From(CheckResult r)
    {
        // Read through JSON text, so a part merged where it ran reads exactly like one that crossed from a sandbox.
        if (r.Details[Key] is not JsonObject raw) throw new InvalidDataException($"check '{r.Id}': the shard returned no unit records ({(r.Reasons.Count > 0 ? r.Reasons[0] : r.Summary)})");
        var o = JsonNode.Parse(raw.ToJsonString())!.AsObject();
        try
        {
            long L(string k) => o[k]?.GetValue<long>() ?? throw new InvalidDataException($"check '{r.Id}': shard part has no '{k}'");
            var units = (o["units"] as JsonArray ?? throw new InvalidDataException($"check '{r.Id}': shard part has no unit list"))
                .Select(u => u as JsonObject ?? throw new InvalidDataException($"check '{r.Id}': a unit record is not an object")).ToList();
            var part = new ShardPart((int)L("index"), (int)L("count"), L("start"), L("end"), L("total"), units, o["state"] as JsonObject ?? new JsonObject());
            if (part.End - part.Start != units.Count) throw new InvalidDataException($"check '{r.Id}': shard {part.Index} claims units {part.Start}..{part.End} but returned {units.Count} records");
            return part;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException) { throw new InvalidDataException($"check '{r.Id}': malformed shard part: {e.Message}"); }
    }
}

/// <summary>The parts of one sharded check from all shards, checked to cover its units exactly once, in unit order.</summary>
public sealed class ShardParts
{
    public long Total { get; }
    public IReadOnlyList<ShardPart> Parts { get; }
    /// <summary>Every unit's record, in unit order (index = unit index).</summary>
    public IReadOnlyList<JsonObject> Units { get; }

    public ShardParts(IEnumerable<ShardPart> parts)
    {
        Parts = parts.OrderBy(p => p.Index).ToList();
        if (Parts.Count == 0) throw new InvalidDataException("no shard returned a part");
        Total = Parts[0].Total;
        long next = 0;
        for (int i = 0; i < Parts.Count; i++)
        {
            var p = Parts[i];
            if (p.Index != i || p.Count != Parts.Count) throw new InvalidDataException($"shard parts are numbered {string.Join(",", Parts.Select(x => $"{x.Index}/{x.Count}"))}: a shard is missing or duplicated");
            if (p.Total != Total) throw new InvalidDataException($"shard {i} counts {p.Total} units, shard 0 counts {Total}");
            var (s, e) = new ShardSelection(i, p.Count).Range(Total);
            if (p.Start != s || p.End != e) throw new InvalidDataException($"shard {i} returned units {p.Start}..{p.End}, expected {s}..{e}");
            next = e;
        }
        if (next != Total) throw new InvalidDataException($"the shards cover {next} of {Total} units");
        Units = Parts.SelectMany(p => p.Units).ToList();
    }
}
