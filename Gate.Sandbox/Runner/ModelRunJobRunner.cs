using System.Security.Cryptography;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Sandbox;
using Gate.Core.Tensors;
using Gate.Sandbox.Protocol;

namespace Gate.Sandbox.Runner;

/// <summary>
/// A <c>gate run</c> job inside the sandbox: every output and capture becomes one .npy (a sequence: one .npz, an
/// optional that holds none: no file) in the evidence folder, listed (name as description, size, SHA-256) in a single
/// result with id <see cref="ResultId"/>, so the host collects it through the same validation as check evidence.
/// </summary>
internal static class ModelRunJobRunner
{
    public const string ResultId = JobManifest.RunResultId;

    public static CheckResult Run(JobManifest manifest, Func<string, string> inJob, string evidenceDir)
    {
        var model = OnnxModelLoader.Load(inJob(manifest.Model));
        if (model.Sha256 != manifest.ModelSha256) throw new InvalidDataException($"model digest changed between planning and execution ({manifest.ModelSha256} → {model.Sha256})");
        var inputs = manifest.Inputs.ToDictionary(kv => kv.Key, kv => ModelValue.Read(inJob(kv.Value)));
        var values = ModelRunExecutor.RunValues(model, inputs, manifest.Captures, manifest.Runtime, manifest.InputGradients);
        Directory.CreateDirectory(evidenceDir);
        var result = new CheckResult { Id = ResultId, Type = ResultId, Verdict = Verdict.Pass };
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, value) in values)
        {
            if (value.Extension is not { } ext) continue; // none
            var file = ModelRunExecutor.SafeName(name) + ext;
            for (int i = 2; !used.Add(file); i++) file = $"{ModelRunExecutor.SafeName(name)}-{i}{ext}";
            var path = Path.Combine(evidenceDir, file);
            value.Write(path);
            using var s = File.OpenRead(path);
            result.Evidence.Add(new EvidenceFile(file, Convert.ToHexStringLower(SHA256.HashData(s)), s.Length, name));
        }
        return result;
    }
}
