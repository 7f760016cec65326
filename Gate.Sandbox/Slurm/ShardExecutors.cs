using Gate.Core;
using Gate.Core.Sandbox;

namespace Gate.Sandbox.Slurm;

/// <summary>The executors <c>gate check --executor</c> offers, by name.</summary>
public static class ShardExecutors
{
    public static readonly string[] Names = ["local", "slurm"];

    /// <returns>null for one local shard: today's single sandbox job, with nothing to merge.</returns>
    public static IShardExecutor? Create(string? name, int shards, string? sharedDir, string? partition, string? gres, int retries, string? sandbox)
    {
        if (shards < 1) throw new GateInputException($"--shards must be at least 1 (got {shards})");
        if (retries < 0) throw new GateInputException($"--retries must be 0 or more (got {retries})");
        switch (name ?? "local")
        {
            case "local":
                if (partition is not null || gres is not null || sharedDir is not null)
                    throw new GateInputException("--partition, --gres and --shared-dir apply to --executor slurm only");
                return shards == 1 ? null : new LocalShardExecutor(shards);
            case "slurm":
                if (!Slurm.Available) throw new GateComponentMissingException("--executor slurm: sbatch and squeue were not found on PATH (install the Slurm client tools, or run on a submit host)");
                var dir = Path.GetFullPath(sharedDir ?? Path.Combine(Environment.CurrentDirectory, ".gate-slurm"));
                Directory.CreateDirectory(dir);
                return new SlurmExecutor(new SlurmOptions(shards, dir, partition, gres, retries, sandbox));
            case var other:
                throw new GateInputException($"--executor: unknown executor '{other}' (expected {string.Join(", ", Names)})");
        }
    }
}
