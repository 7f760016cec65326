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
        var staged = JobStaging.NewPrivateJob(uid, out bool root);
        try
        {
            var modelName = ModelRunExecutor.SafeName(Path.GetFileName(job.ModelPath));
            var modelRel = Path.Combine("model", modelName);
            if (JobStaging.CopyFile(job.ModelPath, Path.Combine(staged.JobDir, modelRel)) != job.ModelSha256)
                throw new InvalidDataException($"{job.ModelPath}: the model changed after it was read (SHA-256 differs)");
            var inputs = new Dictionary<string, string>(StringComparer.Ordinal);
            int i = 0;
            foreach (var (name, path) in job.Inputs)
            {
                var rel = Path.Combine("inputs", $"{i++}.npy");
                JobStaging.CopyFile(path, Path.Combine(staged.JobDir, rel));
                inputs[name] = rel;
            }
            var manifest = new JobManifest
            {
                Kind = JobManifest.KindRun, Model = modelRel, ModelSha256 = job.ModelSha256,
                Inputs = inputs, Captures = [.. job.Captures], Runtime = job.Runtime, InputGradients = job.InputGradients,
            };
            JobStaging.WriteFile(Path.Combine(staged.JobDir, JobManifest.FileName), JsonSerializer.SerializeToUtf8Bytes(manifest, JobProtocol.Json));
            JobStaging.HandOver(staged, root);
            return staged;
        }
        catch
        {
            staged.Dispose();
            throw;
        }
    }
}
