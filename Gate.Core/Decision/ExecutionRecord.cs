using System.Text.Json.Nodes;

namespace Gate.Core.Decision;

/// <summary>One shard as the decision lists it, for auditors: what it covered, where it ran, what it returned.</summary>
/// <param name="Units">Per sharded check, the unit range "start..end" (end exclusive) of its total.</param>
/// <param name="ResultSha256">SHA-256 of the shard's results (<see cref="ShardDigest"/>); null when it returned none.</param>
public sealed record ShardRecord(int Index, IReadOnlyDictionary<string, string> Units, string? Node, int? ExitStatus, int Attempts,
    string? ResultSha256, string? Fault)
{
    /// <summary>Per sharded check, this shard's own budget: what it was given, what it used, and why it ran out (if it did).</summary>
    public IReadOnlyDictionary<string, JsonObject> Budgets { get; init; } = new Dictionary<string, JsonObject>();
}

/// <summary>How a split run was executed: executor, shards and the Merkle root of their result digests (signed with the decision).</summary>
public sealed record ExecutionInfo(string Executor, int Shards, IReadOnlyList<ShardRecord> ShardList, string MerkleRoot)
{
    /// <summary>Checks that ran whole in shard 0 (no work units declared).</summary>
    public IReadOnlyList<string> Unsharded { get; init; } = [];
}
