using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Plan;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Protocol;

namespace Gate.Sandbox.Slurm;

/// <summary>
/// A job staged on a folder every node sees: the model and data files (digests as planned) and this manifest,
/// with paths relative to the folder. No key, no policy file and nothing of the submitting host's environment.
/// </summary>
public sealed record StagedShardJob(string Model, string ModelSha256, BoundPlan Plan, bool UseGpu, bool RequireGpu, ResourceLimits Limits,
    IReadOnlyList<string> ModelExternalData, IsolationLevel Floor, int Shards)
{
    public const string FileName = "shard-job.json";

    /// <summary>Copies what the job reads into <paramref name="jobDir"/> (each copy checked against its planned digest) and writes the manifest.</summary>
    public static void Stage(SandboxJob job, IsolationLevel floor, int shards, string jobDir)
    {
        Directory.CreateDirectory(Path.Combine(jobDir, "model"));
        if (JobStaging.CopyFile(job.ModelPath, Path.Combine(jobDir, "model", "model.onnx")) != job.ModelSha256)
            throw new InvalidDataException($"{job.ModelPath}: the model changed after it was planned (SHA-256 differs)");
        var modelDir = Path.GetDirectoryName(Path.GetFullPath(job.ModelPath))!;
        foreach (var location in job.ModelExternalData ?? [])
            JobStaging.CopyFile(Path.Combine(modelDir, location), Path.Combine(jobDir, "model", location));
        int i = 0;
        string Copy(string from, string sha256, string rel)
        {
            if (!string.Equals(JobStaging.CopyFile(from, Path.Combine(jobDir, rel)), sha256, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"{from}: the data file changed after it was planned (SHA-256 differs)");
            return rel;
        }
        var plan = job.Plan.WithDataAt(ds =>
        {
            int n = i++;
            return (Copy(ds.InputsPath, ds.InputsSha256, $"data/{n}.inputs.npy"),
                ds.LabelsPath is null ? null : Copy(ds.LabelsPath, ds.LabelsSha256 ?? "", $"data/{n}.labels.npy"));
        });
        var staged = new StagedShardJob("model/model.onnx", job.ModelSha256, plan, job.UseGpu, job.RequireGpu, job.Limits, job.ModelExternalData ?? [], floor, shards);
        Gate.Core.IO.AtomicFile.Write(Path.Combine(jobDir, FileName), JsonSerializer.SerializeToUtf8Bytes(staged, BoundPlan.Json));
    }

    public static StagedShardJob Read(string jobDir)
    {
        try { return JsonSerializer.Deserialize<StagedShardJob>(File.ReadAllBytes(Path.Combine(jobDir, FileName)), BoundPlan.Json) ?? throw new InvalidDataException("empty"); }
        catch (Exception e) when (e is JsonException or IOException or InvalidDataException)
        { throw new GateInputException($"{Path.Combine(jobDir, FileName)}: not a staged shard job ({e.Message})"); }
    }

    /// <summary>The job for shard <paramref name="index"/>, with paths on this node.</summary>
    public SandboxJob JobFor(string jobDir, int index)
    {
        string At(string rel) => Path.GetFullPath(Path.Combine(jobDir, rel));
        var plan = Plan.WithDataAt(ds => (At(ds.InputsPath), ds.LabelsPath is null ? null : At(ds.LabelsPath))) with { Shard = new ShardSelection(index, Shards) };
        plan.Shard.Validate();
        return new SandboxJob(At(Model), plan, UseGpu, RequireGpu, Limits, ModelExternalData);
    }
}

/// <summary>
/// What one array task does on its node (<c>gate shard run</c>): pick this node's sandbox (at least the policy's
/// floor, the same hardening as a local run), run the shard in it, and write <c>results/results.json</c>, <c>results/checks/</c>,
/// <c>results/evidence/</c> and <c>results/shard.json</c> (node, backend, isolation) for the submitting host, which
/// reads them as untrusted input. Exit 0: the shard completed; 1: it did not (the host may retry it).
/// </summary>
public static class ShardTask
{
    public const string InfoFileName = "shard.json";

    public static async Task<int> RunAsync(string jobDir, int index, string outDir, string? backendName, IProgress<ProgressUpdate> progress, CancellationToken ct)
    {
        var staged = StagedShardJob.Read(jobDir);
        var job = staged.JobFor(jobDir, index);
        var results = Path.Combine(outDir, "results");
        var evidence = Path.Combine(results, "evidence");
        Directory.CreateDirectory(evidence);
        var backend = SandboxSelector.Select(backendName, staged.Floor);
        SandboxOutcome outcome;
        try { outcome = await backend.RunAsync(job, evidence, progress, ct).ConfigureAwait(false); }
        catch (Exception e) when (!(e is OperationCanceledException && ct.IsCancellationRequested))
        { outcome = new SandboxOutcome(false, $"sandbox failed: {e.Message}", [], backend.AchievedIsolation, null); }
        var info = new JsonObject
        {
            ["node"] = Environment.GetEnvironmentVariable("SLURMD_NODENAME") ?? Environment.MachineName,
            ["backend"] = backend.Name, ["isolation"] = outcome.Isolation.Name(),
            ["imageId"] = outcome.Details?["imageId"]?.ToString(), ["image"] = outcome.Details?["image"]?.ToString(),
        };
        Gate.Core.IO.AtomicFile.WriteText(Path.Combine(results, InfoFileName), info.ToJsonString());
        // Written last: its presence means the shard's evidence is in place.
        JobProtocol.WriteCheckResults(results, job.CheckIds, outcome.Completed ? outcome.Results : [], JobStaging.MaxCheckResultBytes);
        JobProtocol.WriteJsonAtomic(Path.Combine(results, RunnerResults.FileName), new RunnerResults
        {
            Completed = outcome.Completed, Error = outcome.FaultReason, Runtime = outcome.Runtime,
        });
        return outcome.Completed ? 0 : 1;
    }
}
