using System.Text.Json;
using Gate.Core.Sandbox;

namespace Gate.Sandbox.Protocol;

/// <summary>
/// Stages a <c>gate run</c> job: the model (under its own file name, so messages name it) and the input .npy files
/// the user named, nothing else; the same folder layout and permissions as a check job.
/// </summary>
public static class ModelRunStaging
{
    public static StagedJob Stage(ModelRunJob job, int uid = JobStaging.SandboxUid)
    {
        var work = Path.Combine(Path.GetTempPath(), $"gate-sandbox-{Guid.NewGuid():N}");
        var staged = new StagedJob(work, Path.Combine(work, "job"), Path.Combine(work, "results"), uid);
        try
        {
            Directory.CreateDirectory(Path.Combine(staged.JobDir, "model"));
            Directory.CreateDirectory(Path.Combine(staged.JobDir, "inputs"));
            Directory.CreateDirectory(staged.ResultsDir);
            var modelName = ModelRunExecutor.SafeName(Path.GetFileName(job.ModelPath));
            File.Copy(job.ModelPath, Path.Combine(staged.JobDir, "model", modelName));
            var inputs = new Dictionary<string, string>(StringComparer.Ordinal);
            int i = 0;
            foreach (var (name, path) in job.Inputs)
            {
                var rel = Path.Combine("inputs", $"{i++}.npy");
                File.Copy(path, Path.Combine(staged.JobDir, rel));
                inputs[name] = rel;
            }
            var manifest = new JobManifest
            {
                Kind = JobManifest.KindRun, Model = Path.Combine("model", modelName), ModelSha256 = job.ModelSha256,
                Inputs = inputs, Captures = [.. job.Captures], Runtime = job.Runtime,
            };
            File.WriteAllText(Path.Combine(staged.JobDir, JobManifest.FileName), JsonSerializer.Serialize(manifest, JobProtocol.Json));
            JobStaging.MakeReadableBySandbox(work, staged.ResultsDir, uid);
            return staged;
        }
        catch
        {
            staged.Dispose();
            throw;
        }
    }
}
