using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Evidence;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Sandbox;

namespace Gate.Sandbox.Protocol;

/// <summary>A staged job: <c>job/</c> (read-only to the sandbox) and <c>results/</c> (its only writable folder).</summary>
/// <param name="Uid">The user the sandbox runs as; it owns <paramref name="ResultsDir"/>.</param>
public sealed record StagedJob(string WorkDir, string JobDir, string ResultsDir, int Uid = JobStaging.SandboxUid) : IDisposable
{
    public void Dispose()
    {
        try { Directory.Delete(WorkDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>What the host accepted from a sandbox after validating results.json and every evidence file.</summary>
public sealed record CollectedResults(List<CheckResult> Results, RuntimeInfo? Runtime, JsonObject? SelfTest);

/// <summary>
/// Host side of the job protocol: copies what a job needs into a fresh folder, and reads back what the sandbox
/// wrote, treating it as untrusted input (size caps, ids, paths and digests checked before anything is copied).
/// </summary>
public static class JobStaging
{
    /// <summary>The unprivileged identity the sandbox runs as (nobody/nogroup; "sandbox" in the image's passwd).</summary>
    public const int SandboxUid = 65534, SandboxGid = 65534;
    public const long MaxResultsBytes = 64L << 20;

    public static StagedJob Stage(SandboxJob job, SelfTestRequest? selfTest = null, string? fault = null, int uid = SandboxUid)
    {
        var work = Path.Combine(Path.GetTempPath(), $"gate-sandbox-{Guid.NewGuid():N}");
        var jobDir = Path.Combine(work, "job");
        var resultsDir = Path.Combine(work, "results");
        Directory.CreateDirectory(jobDir);
        Directory.CreateDirectory(resultsDir);
        var staged = new StagedJob(work, jobDir, resultsDir, uid);
        try
        {
            var data = new Dictionary<string, string>(StringComparer.Ordinal);
            string policyRel = "";
            if (selfTest is null)
            {
                File.Copy(job.ModelPath, Path.Combine(jobDir, "model.onnx"));
                policyRel = StagePolicyTree(job, jobDir, data);
            }
            var manifest = new JobManifest
            {
                Kind = selfTest is null ? JobManifest.KindChecks : JobManifest.KindSelfTest,
                Model = selfTest is null ? "model.onnx" : "", ModelSha256 = job.ModelSha256,
                Policy = policyRel, PolicySha256 = job.PolicySha256,
                Data = data, CheckIds = [.. job.CheckIds], UseGpu = job.UseGpu, RequireGpu = job.RequireGpu,
                SelfTest = selfTest, Fault = fault,
            };
            File.WriteAllText(Path.Combine(jobDir, JobManifest.FileName), JsonSerializer.Serialize(manifest, JobProtocol.Json));
            MakeReadableBySandbox(work, resultsDir, uid);
            return staged;
        }
        catch
        {
            staged.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies the policy and every file it references (any scalar that names an existing file relative to the
    /// policy: datasets, specs, environments — whatever a check type reads) into job/tree/, keeping their positions
    /// relative to each other, so the unchanged policy resolves them inside the sandbox. Datasets (including --data
    /// overrides and absolute paths) are also passed as overrides. Other absolute file references are copied but
    /// resolve to the host path inside, so policies should reference such files relatively.
    /// Returns the policy's path relative to the job folder.
    /// </summary>
    private static string StagePolicyTree(SandboxJob job, string jobDir, Dictionary<string, string> data)
    {
        var policyPath = job.PolicyPath;
        var tree = Path.Combine(jobDir, "tree");
        var policy = PolicyLoader.Load(policyPath, job.DataOverrides);
        var policyDir = Path.GetDirectoryName(Path.GetFullPath(policyPath))!;
        var files = new SortedSet<string>(StringComparer.Ordinal) { Path.GetFullPath(policyPath) };
        foreach (var ds in policy.Spec.Datasets.Values)
        {
            if (File.Exists(ds.InputsPath)) files.Add(ds.InputsPath);
            if (ds.LabelsPath is not null && File.Exists(ds.LabelsPath)) files.Add(ds.LabelsPath);
        }
        Walk(policy.Root);
        var root = CommonDirectory(files);
        foreach (var f in files)
        {
            var to = Path.Combine(tree, Path.GetRelativePath(root, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to, overwrite: true);
        }
        string Rel(string f) => Path.Combine("tree", Path.GetRelativePath(root, f));
        // Datasets are always passed as overrides: that also relocates absolute paths and --data overrides.
        foreach (var ds in policy.Spec.Datasets.Values)
        {
            if (files.Contains(ds.InputsPath)) data[ds.Name] = Rel(ds.InputsPath);
            if (ds.LabelsPath is not null && files.Contains(ds.LabelsPath)) data[ds.Name + ".labels"] = Rel(ds.LabelsPath);
        }
        return Rel(Path.GetFullPath(policyPath));

        void Walk(PolicyNode node)
        {
            switch (node)
            {
                case PolicyMapping m: foreach (var (_, v) in m.Entries) Walk(v); break;
                case PolicySequence q: foreach (var v in q.Items) Walk(v); break;
                case PolicyScalar sc when sc.Value.Length is > 0 and < 1024 && sc.Value.IndexOfAny(Path.GetInvalidPathChars()) < 0:
                    var full = Path.GetFullPath(Path.Combine(policyDir, sc.Value));
                    if (File.Exists(full)) files.Add(full);
                    break;
            }
        }
    }

    private static string CommonDirectory(IEnumerable<string> files)
    {
        string? common = null;
        foreach (var f in files)
        {
            var dir = Path.GetDirectoryName(f)!;
            if (common is null) { common = dir; continue; }
            while (!(dir + "/").StartsWith(common.TrimEnd('/') + "/", StringComparison.Ordinal)) common = Path.GetDirectoryName(common) ?? "/";
        }
        return common ?? "/";
    }

    /// <summary>Job files world-readable, results owned by the sandbox user (when we may chown): nothing else writable.</summary>
    internal static void MakeReadableBySandbox(string work, string resultsDir, int uid)
    {
        if (OperatingSystem.IsWindows()) return;
        const UnixFileMode dir = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                 UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        const UnixFileMode file = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        foreach (var d in Directory.EnumerateDirectories(work, "*", SearchOption.AllDirectories).Append(work)) File.SetUnixFileMode(d, dir);
        foreach (var f in Directory.EnumerateFiles(work, "*", SearchOption.AllDirectories)) File.SetUnixFileMode(f, file);
        if (Environment.UserName == "root" || geteuid() == 0) _ = chown(resultsDir, uid, SandboxGid);
    }

    [DllImport("libc", SetLastError = true)] private static extern int chown(string path, int uid, int gid);
    [DllImport("libc")] internal static extern uint geteuid();

    /// <summary>
    /// Reads results.json and validates it against the job: parseable, within size, only requested check ids and
    /// each once, every evidence file inside results/evidence with the recorded size and SHA-256. Only then are the
    /// evidence files copied into <paramref name="evidenceDir"/>. Throws <see cref="InvalidDataException"/> with the reason.
    /// </summary>
    public static CollectedResults Collect(StagedJob staged, IReadOnlyCollection<string> requestedIds, string evidenceDir)
    {
        var path = Path.Combine(staged.ResultsDir, RunnerResults.FileName);
        var info = new FileInfo(path);
        if (!info.Exists) throw new InvalidDataException("the sandbox wrote no results.json");
        if (info.Length > MaxResultsBytes) throw new InvalidDataException($"results.json is {info.Length} bytes (limit {MaxResultsBytes})");
        RunnerResults parsed;
        try { parsed = JobProtocol.ReadJson<RunnerResults>(path); }
        catch (JsonException e) { throw new InvalidDataException($"results.json is malformed: {e.Message}"); }
        if (!parsed.Completed) throw new InvalidDataException($"the runner failed: {parsed.Error ?? "no reason given"}");
        if (parsed.Results is null) throw new InvalidDataException("results.json has no results list");

        var wanted = new HashSet<string>(requestedIds, StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var evidenceRoot = Path.GetFullPath(Path.Combine(staged.ResultsDir, "evidence")) + Path.DirectorySeparatorChar;
        var copies = new List<(string From, string Rel)>();
        foreach (var r in parsed.Results)
        {
            if (r is null || r.Id is null || r.Type is null) throw new InvalidDataException("results.json has a result without id/type");
            if (!wanted.Contains(r.Id)) throw new InvalidDataException($"results.json has a result for check '{r.Id}' that was not requested");
            if (!seen.Add(r.Id)) throw new InvalidDataException($"results.json has two results for check '{r.Id}'");
            foreach (var ev in r.Evidence)
            {
                if (ev?.Path is null || Path.IsPathRooted(ev.Path)) throw new InvalidDataException($"check '{r.Id}': evidence path must be relative");
                var full = Path.GetFullPath(Path.Combine(evidenceRoot, ev.Path));
                if (!full.StartsWith(evidenceRoot, StringComparison.Ordinal)) throw new InvalidDataException($"check '{r.Id}': evidence path '{ev.Path}' leaves the evidence folder");
                var fi = new FileInfo(full);
                if (!fi.Exists || fi.LinkTarget is not null) throw new InvalidDataException($"check '{r.Id}': evidence file '{ev.Path}' is missing or not a plain file");
                if (fi.Length != ev.Bytes) throw new InvalidDataException($"check '{r.Id}': evidence file '{ev.Path}' has {fi.Length} bytes, results say {ev.Bytes}");
                using (var s = fi.OpenRead())
                    if (!string.Equals(Convert.ToHexStringLower(SHA256.HashData(s)), ev.Sha256, StringComparison.OrdinalIgnoreCase))
                        throw new InvalidDataException($"check '{r.Id}': evidence file '{ev.Path}' does not match its recorded SHA-256");
                copies.Add((full, full[evidenceRoot.Length..]));
            }
        }
        foreach (var (from, rel) in copies)
        {
            var to = Path.Combine(evidenceDir, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(from, to + ".tmp", overwrite: true);
            File.Move(to + ".tmp", to, overwrite: true);
        }
        return new CollectedResults(parsed.Results, parsed.Runtime, parsed.SelfTest);
    }

    /// <summary>Reads a self-test result (results.json of a selftest job); malformed → InvalidDataException.</summary>
    public static JsonObject CollectSelfTest(StagedJob staged)
    {
        var collected = Collect(staged, [], staged.ResultsDir);
        return collected.SelfTest ?? throw new InvalidDataException("the self-test wrote no report");
    }
}
