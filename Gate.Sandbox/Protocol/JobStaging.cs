using Gate.Core.Decision;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Evidence;
using Gate.Core.IO;
using Gate.Core.Plan;
using Gate.Core.Runtime;
using Gate.Core.Sandbox;

namespace Gate.Sandbox.Protocol;

/// <summary>
/// A staged job: <c>job/</c> (read-only to the sandbox) and <c>results/</c> (its only writable folder), both inside
/// a private work folder (0700, owned by the sandbox user <paramref name="Uid"/> when the host runs as root, else by
/// the host user, who is then also the sandbox user). Disposing removes the whole folder without following links.
/// </summary>
/// <param name="Uid">The user the sandbox runs as; it owns the work folder and everything in it.</param>
public sealed record StagedJob(string WorkDir, string JobDir, string ResultsDir, int Uid = JobStaging.SandboxUid, int Gid = JobStaging.SandboxGid) : IDisposable
{
    /// <summary>The host-owned folder the work folder sits in; reads of sandbox output start here, not in the sandbox's own folder.</summary>
    internal string TrustedParent => Path.GetDirectoryName(WorkDir)!;
    /// <summary>A path under results/, relative to <see cref="TrustedParent"/>, for <see cref="UntrustedFiles"/>.</summary>
    internal string ResultsRelative(string rel) => $"{Path.GetFileName(WorkDir)}/results/{rel}";

    public void Dispose()
    {
        try { JobStaging.RemoveTree(WorkDir); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>What the host accepted from a sandbox after validating results.json and every evidence file.</summary>
public sealed record CollectedResults(List<CheckResult> Results, RuntimeInfo? Runtime, JsonObject? SelfTest)
{
    /// <summary>The sandbox's measured pass cost, once its numbers passed <see cref="CostEstimator.Accept"/>.</summary>
    public PassCost? PassCost { get; init; }
}

/// <summary>
/// Host side of the job protocol: copies exactly what a job needs into a fresh private folder, and reads back what
/// the sandbox wrote, treating it as untrusted input (no link followed, sizes capped, ids, paths and digests checked
/// before anything is copied out).
/// </summary>
public static class JobStaging
{
    /// <summary>The unprivileged identity the sandbox runs as (nobody/nogroup; "sandbox" in the image's passwd).</summary>
    public const int SandboxUid = 65534, SandboxGid = 65534;
    public const long MaxResultsBytes = 64L << 20;
    /// <summary>Each check's own result file (<see cref="RunnerResults.CheckFile"/>), and all of them together.</summary>
    public const long MaxCheckResultBytes = 64L << 20, MaxCheckResultsTotalBytes = 512L << 20;
    public const long MaxSelfTestBytes = 1L << 20;
    public const long MaxEvidenceFileBytes = 256L << 20, MaxEvidenceTotalBytes = 1L << 30;
    public const int MaxEvidenceFiles = 10_000;

    private const UnixFileMode OwnerAll = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode OwnerReadDir = UnixFileMode.UserRead | UnixFileMode.UserExecute;
    private const UnixFileMode OwnerRead = UnixFileMode.UserRead;

    /// <param name="uid">The sandbox user; honoured only when we run as root (else the sandbox runs as us).</param>
    public static StagedJob Stage(SandboxJob job, SelfTestRequest? selfTest = null, string? fault = null, int uid = SandboxUid)
    {
        var staged = NewPrivateJob(uid, out bool root);
        try
        {
            string modelRel = "";
            BoundPlan? plan = null;
            if (selfTest is null) (modelRel, plan) = StageInputs(job, staged.JobDir);
            var manifest = new JobManifest
            {
                Kind = selfTest is null ? JobManifest.KindChecks : JobManifest.KindSelfTest,
                Model = modelRel, ModelSha256 = job.ModelSha256, Plan = plan,
                UseGpu = job.UseGpu, RequireGpu = job.RequireGpu,
                SelfTest = selfTest, Fault = fault,
            };
            WriteFile(Path.Combine(staged.JobDir, JobManifest.FileName), JsonSerializer.SerializeToUtf8Bytes(manifest, JobProtocol.Json));
            HandOver(staged, root);
            return staged;
        }
        catch
        {
            staged.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A fresh private work folder with empty job/ and results/. mkdtemp creates it 0700 under a fresh name, so
    /// nobody else sees the folder, let alone its contents, at any point. Call <see cref="HandOver"/> when staged.
    /// </summary>
    /// <param name="uid">The sandbox user; honoured only when we run as root (else the sandbox runs as us).</param>
    internal static StagedJob NewPrivateJob(int uid, out bool root)
    {
        root = !OperatingSystem.IsWindows() && Posix.geteuid() == 0;
        int gid = root ? SandboxGid : OperatingSystem.IsWindows() ? SandboxGid : (int)getegid();
        if (!root && !OperatingSystem.IsWindows()) uid = (int)Posix.geteuid();
        var work = Directory.CreateTempSubdirectory("gate-sandbox-").FullName;
        var staged = new StagedJob(work, Path.Combine(work, "job"), Path.Combine(work, "results"), uid, gid);
        try
        {
            MakeDir(staged.JobDir);
            MakeDir(staged.ResultsDir);
            return staged;
        }
        catch
        {
            staged.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies exactly what the plan reads: the model (and its external data) and each dataset file the plan names,
    /// into data/. Every copy must have the digest the host planned with (the model's, each data file's), so a file
    /// swapped between planning and staging never enters. No policy file is staged: the plan is the policy's meaning.
    /// Returns the model's path and the plan with its data paths relative to the job folder.
    /// </summary>
    private static (string Model, BoundPlan Plan) StageInputs(SandboxJob job, string jobDir)
    {
        MakeDir(Path.Combine(jobDir, "model"));
        const string modelRel = "model/model.onnx";
        if (CopyFile(job.ModelPath, Path.Combine(jobDir, modelRel)) != job.ModelSha256)
            throw new InvalidDataException($"{job.ModelPath}: the model changed after it was planned (SHA-256 differs)");
        var modelDir = Path.GetDirectoryName(Path.GetFullPath(job.ModelPath))!;
        foreach (var location in job.ModelExternalData ?? [])
            CopyFile(Path.Combine(modelDir, location), Path.Combine(jobDir, "model", location));

        int i = 0;
        string Copy(string from, string sha256, string rel)
        {
            if (!string.Equals(CopyFile(from, Path.Combine(jobDir, rel)), sha256, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"{from}: the data file changed after it was planned (SHA-256 differs)");
            return rel;
        }
        var plan = job.Plan.WithDataAt(ds =>
        {
            int n = i++;
            return (Copy(ds.InputsPath, ds.InputsSha256, $"data/{n}.inputs.npy"),
                ds.LabelsPath is null ? null : Copy(ds.LabelsPath, ds.LabelsSha256 ?? "", $"data/{n}.labels.npy"));
        });
        return (modelRel, plan);
    }

    /// <summary>Copies a file into the job (owner-read-only, never world-readable), creating folders 0700; returns its SHA-256.</summary>
    internal static string CopyFile(string from, string to)
    {
        CreateFolders(Path.GetDirectoryName(to)!);
        using var src = File.OpenRead(from);
        using var dst = new FileStream(to, NewFile());
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[1 << 20];
        int n;
        while ((n = src.Read(buf)) > 0) { sha.AppendData(buf, 0, n); dst.Write(buf, 0, n); }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    internal static void WriteFile(string to, byte[] bytes)
    {
        CreateFolders(Path.GetDirectoryName(to)!);
        using var dst = new FileStream(to, NewFile());
        dst.Write(bytes);
    }

    private static FileStreamOptions NewFile()
    {
        var o = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) o.UnixCreateMode = OwnerRead;
        return o;
    }

    private static void CreateFolders(string dir)
    {
        if (Directory.Exists(dir)) return;
        CreateFolders(Path.GetDirectoryName(dir)!);
        MakeDir(dir);
    }

    private static void MakeDir(string dir)
    {
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(dir);
        else Directory.CreateDirectory(dir, OwnerAll);
    }

    /// <summary>
    /// Gives the folder to the sandbox user: job/ read-only (0500 folders, 0400 files), results/ and the work folder
    /// 0700, all owned by that user when we are root. Group and others get nothing, ever.
    /// </summary>
    internal static void HandOver(StagedJob staged, bool root)
    {
        if (OperatingSystem.IsWindows()) return;
        foreach (var d in Directory.EnumerateDirectories(staged.JobDir, "*", SearchOption.AllDirectories).Append(staged.JobDir))
            File.SetUnixFileMode(d, OwnerReadDir);
        if (!root) return;
        foreach (var p in Directory.EnumerateFileSystemEntries(staged.WorkDir, "*", SearchOption.AllDirectories).Append(staged.WorkDir))
            if (lchown(p, staged.Uid, staged.Gid) != 0)
                throw new IOException($"cannot give {p} to the sandbox user {staged.Uid} (errno {Marshal.GetLastPInvokeError()})");
    }

    /// <summary>
    /// Removes a folder the sandbox had write access to: links are removed, never followed (nor chmod-ed through),
    /// and read-only folders (job/) are made writable first so a non-root host can empty them.
    /// </summary>
    internal static void RemoveTree(string path)
    {
        var info = new DirectoryInfo(path);
        if (info.LinkTarget is not null) { File.Delete(path); return; }
        if (!info.Exists) return;
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, OwnerAll);
        foreach (var entry in info.EnumerateFileSystemInfos())
        {
            if (entry is DirectoryInfo && entry.LinkTarget is null) RemoveTree(entry.FullName);
            else File.Delete(entry.FullName);
        }
        Directory.Delete(path);
    }

    [DllImport("libc", SetLastError = true)] private static extern int lchown(string path, int uid, int gid);
    [DllImport("libc")] private static extern uint getegid();

    /// <summary>
    /// Reads results.json and each check's own file (<see cref="RunnerResults.CheckFile"/>) and validates them
    /// against the job: regular files within size (never a link, FIFO or device, at any depth — see
    /// <see cref="UntrustedFiles"/>), parseable, only requested check ids and each once, every evidence file a regular
    /// file inside results/evidence with the recorded size and SHA-256. Each file is read once, into memory, and only
    /// when all are valid are they written to <paramref name="evidenceDir"/>. Throws <see cref="InvalidDataException"/>
    /// with the reason. The one exception is size: a check whose result file or evidence is over its cap (or over
    /// what the run's total leaves) comes back INCONCLUSIVE saying so, and the other checks keep their results.
    /// </summary>
    public static CollectedResults Collect(StagedJob staged, SandboxJob job, string evidenceDir) =>
        Collect(staged, job.Plan.Checks.Select(c => (c.Id, c.Type)).ToList(), evidenceDir, MaxResultsBytes);

    /// <summary><see cref="Collect(StagedJob, SandboxJob, string)"/> for results whose type the host does not know (a run job's one result).</summary>
    public static CollectedResults Collect(StagedJob staged, IReadOnlyCollection<string> requestedIds, string evidenceDir) =>
        Collect(staged, requestedIds.Select(id => (id, "unknown")).ToList(), evidenceDir, MaxResultsBytes);

    private static CollectedResults Collect(StagedJob staged, IReadOnlyList<(string Id, string Type)> requested, string evidenceDir, long maxResultsBytes)
    {
        RunnerResults parsed;
        try
        {
            var bytes = UntrustedFiles.ReadAll(staged.TrustedParent, staged.ResultsRelative(RunnerResults.FileName), maxResultsBytes);
            parsed = JsonSerializer.Deserialize<RunnerResults>(bytes, JobProtocol.Json) ?? throw new InvalidDataException("results.json is empty (null)");
        }
        catch (UnsafeFileException e) when (e.Missing) { throw new InvalidDataException("the sandbox wrote no results.json"); }
        catch (UnsafeFileException e) { throw new InvalidDataException($"results.json refused: {e.Reason}"); }
        catch (JsonException e) { throw new InvalidDataException($"results.json is malformed: {e.Message}"); }
        if (!parsed.Completed) throw new InvalidDataException($"the runner failed: {parsed.Error ?? "no reason given"}");
        if (parsed.Results is null) throw new InvalidDataException("results.json has no results list");

        // Each check's own file, capped on its own and against what the run's total leaves; an oversized one makes
        // only that check INCONCLUSIVE. A missing one is no result (the pipeline says so for that check alone).
        var results = new List<CheckResult>(parsed.Results);
        var oversized = new Dictionary<string, string>(StringComparer.Ordinal);
        long resultsTotal = 0;
        for (int i = 0; i < requested.Count; i++)
        {
            var (id, _) = requested[i];
            var rel = RunnerResults.CheckFile(i);
            byte[] bytes;
            try { bytes = UntrustedFiles.ReadAll(staged.TrustedParent, staged.ResultsRelative(rel), Math.Min(MaxCheckResultBytes, MaxCheckResultsTotalBytes - resultsTotal)); }
            catch (UnsafeFileException e) when (e.Missing) { continue; }
            catch (UnsafeFileException e) when (e.TooLarge) { oversized[id] = $"its result file {e.Reason.Replace("limit", "cap", StringComparison.Ordinal)}"; continue; }
            catch (UnsafeFileException e) { throw new InvalidDataException($"check '{id}': {rel} refused: {e.Reason}"); }
            resultsTotal += bytes.Length;
            CheckResult r;
            try { r = JsonSerializer.Deserialize<CheckResult>(bytes, JobProtocol.Json) ?? throw new InvalidDataException($"check '{id}': {rel} is empty (null)"); }
            catch (JsonException e) { throw new InvalidDataException($"check '{id}': {rel} is malformed: {e.Message}"); }
            if (r.Id != id) throw new InvalidDataException($"{rel} holds a result for '{r.Id}', not for check '{id}'");
            results.Add(r);
        }

        var wanted = requested.Select(r => r.Id).ToHashSet(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var copies = new List<(string Rel, byte[] Bytes)>();
        var taken = new HashSet<string>(StringComparer.Ordinal);
        long total = 0;
        foreach (var r in results)
        {
            if (r is null || r.Id is null || r.Type is null) throw new InvalidDataException("results.json has a result without id/type");
            if (!wanted.Contains(r.Id)) throw new InvalidDataException($"results.json has a result for check '{r.Id}' that was not requested");
            if (!seen.Add(r.Id)) throw new InvalidDataException($"results.json has two results for check '{r.Id}'");
            var mine = new List<(string Rel, byte[] Bytes)>();
            long before = total;
            foreach (var ev in r.Evidence)
            {
                if (ev?.Path is null || Path.IsPathRooted(ev.Path)) throw new InvalidDataException($"check '{r.Id}': evidence path must be relative");
                if (copies.Count + mine.Count >= MaxEvidenceFiles) throw new InvalidDataException($"results.json lists more than {MaxEvidenceFiles} evidence files");
                var rel = ev.Path.Replace('\\', '/');
                if (!taken.Add(rel)) throw new InvalidDataException($"check '{r.Id}': evidence file '{ev.Path}' is listed twice");
                byte[] bytes;
                try { bytes = UntrustedFiles.ReadAll(staged.TrustedParent, staged.ResultsRelative("evidence/" + rel), Math.Min(MaxEvidenceFileBytes, MaxEvidenceTotalBytes - total)); }
                catch (UnsafeFileException e) when (e.TooLarge)
                {
                    // Too much evidence is this check's problem alone: none of its files is kept, the others' are.
                    oversized[r.Id] = $"its evidence file '{ev.Path}' {e.Reason.Replace("limit", "cap", StringComparison.Ordinal)}";
                    break;
                }
                catch (UnsafeFileException e) { throw new InvalidDataException($"check '{r.Id}': evidence file '{ev.Path}' refused: {e.Reason}"); }
                total += bytes.Length;
                if (bytes.Length != ev.Bytes) throw new InvalidDataException($"check '{r.Id}': evidence file '{ev.Path}' has {bytes.Length} bytes, results say {ev.Bytes}");
                if (!string.Equals(Convert.ToHexStringLower(SHA256.HashData(bytes)), ev.Sha256, StringComparison.OrdinalIgnoreCase))
                    throw new InvalidDataException($"check '{r.Id}': evidence file '{ev.Path}' does not match its recorded SHA-256");
                mine.Add((rel, bytes));
            }
            if (oversized.ContainsKey(r.Id)) total = before;
            else copies.AddRange(mine);
        }
        foreach (var (rel, bytes) in copies)
        {
            Gate.Core.IO.AtomicFile.Write(Path.Combine(evidenceDir, rel), bytes);
        }
        var accepted = results.Where(r => !oversized.ContainsKey(r.Id)).ToList();
        foreach (var (id, type) in requested)
            if (oversized.TryGetValue(id, out var why))
            {
                var reason = $"the sandbox's output for this check was refused: {why}; lower its samples, classes or layers, or split it";
                accepted.Add(new CheckResult { Id = id, Type = type, Verdict = Verdict.Inconclusive, Summary = reason, Reasons = [reason] });
            }
        return new CollectedResults(accepted, parsed.Runtime, parsed.SelfTest) { PassCost = CostEstimator.Accept(parsed.PassCost) };
    }

    /// <summary>Reads a self-test result (results.json of a selftest job, at most 1 MiB); malformed → InvalidDataException.</summary>
    public static JsonObject CollectSelfTest(StagedJob staged)
    {
        var collected = Collect(staged, [], staged.ResultsDir, MaxSelfTestBytes);
        return collected.SelfTest ?? throw new InvalidDataException("the self-test wrote no report");
    }
}
