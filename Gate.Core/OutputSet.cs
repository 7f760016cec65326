using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Gate.Core.Attestation;
using Gate.Core.Decision;
using Gate.Core.IO;
using Gate.Core.Report;

namespace Gate.Core;

/// <summary>The files one committed run placed in its output folder.</summary>
public sealed record WrittenOutputs(string Decision, string? Attestation, IReadOnlyList<string> Reports, string Evidence);

/// <summary>
/// The output folder of a <c>gate check</c> run, all or nothing. A run never writes a result straight into <c>--out</c>:
/// <list type="number">
/// <item><see cref="Open"/> locks the folder (<see cref="LockFile"/>; a second run gets exit 3 naming the holder),
/// removes the set an earlier run left there — so a run that then fails, is refused, crashes or is killed leaves
/// nothing that could be mistaken for its result — and creates the private work folder <see cref="WorkFolder"/>.</item>
/// <item>The run writes evidence into <see cref="WorkDir"/>; <see cref="Commit"/> adds decision, reports and
/// attestation there and renames each into place, decision.json last.</item>
/// <item><see cref="Dispose"/> removes the work folder (a failed run leaves no temporary folder) and releases the lock.</item>
/// </list>
/// Only <see cref="OwnedNames"/> and Gate's two dot-entries are ever touched, so <c>--out .</c> is safe: other files
/// stay. The work folder sits inside the output folder, so renames stay on one filesystem and the run never needs
/// write access outside the folder it was given.
/// </summary>
public sealed class OutputSet : IDisposable
{
    public const string DecisionFile = "decision.json", EvidenceFolder = "evidence";
    /// <summary>The lock (held for the run by the kernel, so a killed holder's lock is free again) and Gate's mark on the folder; it stays.</summary>
    public const string LockFile = ".gate.lock";
    /// <summary>The run's private work folder (0700), with <see cref="HolderFile"/> naming the run that holds the lock.</summary>
    public const string WorkFolder = ".gate-run", HolderFile = "holder.json";

    /// <summary>The names Gate owns in an output folder, in the order a commit renames them into place (decision.json last).</summary>
    public static readonly IReadOnlyList<string> OwnedNames =
        [EvidenceFolder, ReportWriter.HtmlFile, ReportWriter.MarkdownFile, ReportWriter.JUnitFile, ModelSignature.DefaultFileName,
         .. DecisionAttestation.FileNames.Reverse(), DecisionFile];

    public string OutDir { get; }
    public string WorkDir { get; }
    /// <summary>Set when this run found the work folder of a run that never finished (killed): who that was.</summary>
    public string? TookOverFrom { get; }

    private FileStream? _lock;
    private readonly bool _createdOutDir;
    private bool _committed;

    private OutputSet(string outDir, FileStream lockStream, bool createdOutDir, string? tookOverFrom)
    {
        OutDir = outDir;
        WorkDir = Path.Combine(outDir, WorkFolder);
        _lock = lockStream;
        _createdOutDir = createdOutDir;
        TookOverFrom = tookOverFrom;
    }

    /// <summary>Locks <paramref name="outDir"/> (created if missing), clears the earlier run's set and opens a fresh work folder.</summary>
    /// <exception cref="GateInputException">The folder is a file, cannot be written, is in use by another run, or holds an evidence folder Gate did not write.</exception>
    public static OutputSet Open(string outDir)
    {
        var dir = Path.GetFullPath(outDir);
        if (File.Exists(dir)) throw new GateInputException($"{dir}: this is a file, not a folder; name a folder (it is created if missing)") { Input = UserInput.OutputFolder };
        bool created = !Directory.Exists(dir), lockExisted = false;
        var lockPath = Path.Combine(dir, LockFile);
        var work = Path.Combine(dir, WorkFolder);
        FileStream? held = null;
        try
        {
            if (created) Directory.CreateDirectory(dir);
            ProbeWritable(dir);
            lockExisted = File.Exists(lockPath);
            // Gate's mark: a lock file, or (from Gate versions before the lock) a decision.json beside the evidence.
            bool gateFolder = lockExisted || File.Exists(Path.Combine(dir, DecisionFile));
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
                if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                held = new FileStream(lockPath, options);
            }
            catch (IOException)
            {
                // The folder is writable (probed above), so the lock is held by a live run.
                throw new GateInputException($"{dir} is in use by another gate run ({DescribeHolder(dir) ?? "it has not named itself yet"}); " +
                    "wait for it to finish or choose another output folder") { Input = UserInput.OutputFolder };
            }
            // The kernel frees the lock of a run that died; its work folder tells who that was.
            string? tookOver = Directory.Exists(work) || File.Exists(work) ? DescribeHolder(dir) ?? "a gate run that left no details" : null;
            DeleteEntry(work);
            ClearOwned(dir, gateFolder);
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(work);
            else Directory.CreateDirectory(work, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            AtomicFile.WriteText(Path.Combine(work, HolderFile), HolderJson());
            var set = new OutputSet(dir, held, created, tookOver);
            held = null;
            return set;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GateInputException($"{dir}: {e.Message}") { Input = UserInput.OutputFolder };
        }
        finally
        {
            if (held is not null) // refused after taking the lock: leave the folder as it was found (no new mark on a user's folder)
            {
                try { DeleteEntry(work); if (!lockExisted) DeleteEntry(lockPath); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
                held.Dispose();
            }
            if (created && (held is not null || !Directory.Exists(work)))
                try { Directory.Delete(dir); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // only if empty
        }
    }

    /// <summary>
    /// Writes decision.json, report.html, summary.md, junit.xml and (with a key) the attestation into the work folder,
    /// then renames the set into the output folder. A failure leaves none of this run's files there either.
    /// The key is used here, on the host, after the sandbox has returned.
    /// </summary>
    public WrittenOutputs Commit(DecisionRecord record, SigningKey? key)
    {
        if (_lock is null || _committed) throw new InvalidOperationException("the output set is closed or already committed");
        try
        {
            Directory.CreateDirectory(Path.Combine(WorkDir, EvidenceFolder));
            // The model signature comes first, so that the decision (and its attestation) records its digest.
            if (key is not null) record.ModelSignature = ModelSignature.WriteFor(record, WorkDir, key);
            GateCheckPipeline.WriteDecision(record, WorkDir);
            ReportWriter.Write(record, WorkDir);
            if (key is not null) DecisionAttestation.Write(record, WorkDir, key);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GateInputException($"{OutDir}: cannot write the outputs ({e.Message}); nothing from this run was placed there") { Input = UserInput.OutputFolder };
        }
        try
        {
            foreach (var name in OwnedNames)
            {
                var from = Path.Combine(WorkDir, name);
                if (Directory.Exists(from)) Directory.Move(from, Path.Combine(OutDir, name));
                else if (File.Exists(from)) File.Move(from, Path.Combine(OutDir, name), overwrite: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ClearOwned(OutDir, gateFolder: true);
            throw new GateInputException($"{OutDir}: cannot place the outputs ({e.Message}); nothing from this run was left there") { Input = UserInput.OutputFolder };
        }
        _committed = true;
        string At(string name) => Path.Combine(OutDir, name);
        return new WrittenOutputs(At(DecisionFile), key is null ? null : At(DecisionAttestation.FileName),
            [At(ReportWriter.HtmlFile), At(ReportWriter.MarkdownFile), At(ReportWriter.JUnitFile)], At(EvidenceFolder));
    }

    /// <summary>Removes the work folder and releases the lock; a refused run that created the output folder removes it again.</summary>
    public void Dispose()
    {
        if (_lock is null) return;
        try { DeleteEntry(WorkDir); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        if (_createdOutDir && !_committed)
        {
            try { DeleteEntry(Path.Combine(OutDir, LockFile)); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        _lock.Dispose();
        _lock = null;
        if (_createdOutDir && !_committed)
        {
            try { Directory.Delete(OutDir); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // not empty: keep
        }
    }

    /// <summary>
    /// Removes an earlier run's set. The files carry Gate's fixed names; the evidence folder is removed only from a
    /// folder Gate has marked, since a user's own "evidence" folder under <c>--out .</c> must never be deleted.
    /// </summary>
    private static void ClearOwned(string dir, bool gateFolder)
    {
        var evidence = Path.Combine(dir, EvidenceFolder);
        if (!gateFolder && Directory.Exists(evidence) && new DirectoryInfo(evidence).LinkTarget is null && Directory.EnumerateFileSystemEntries(evidence).Any())
            throw new GateInputException($"{dir}: it holds a folder '{EvidenceFolder}' that no gate run wrote (there is no {LockFile}); " +
                "gate replaces that folder on every run and will not delete one it did not write: move it away or choose another output folder") { Input = UserInput.OutputFolder };
        foreach (var name in OwnedNames)
        {
            var path = Path.Combine(dir, name);
            if (name != EvidenceFolder && Directory.Exists(path) && new DirectoryInfo(path).LinkTarget is null)
                throw new GateInputException($"{dir}: '{name}' is a folder, but gate writes a file of that name there: move it away or choose another output folder") { Input = UserInput.OutputFolder };
            DeleteEntry(path);
        }
    }

    /// <summary>Deletes a file, a link (never what it points to) or a folder tree; absent is fine.</summary>
    private static void DeleteEntry(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists && !Directory.Exists(path) && info.LinkTarget is null) return;
        if (info.LinkTarget is not null || !info.Attributes.HasFlag(FileAttributes.Directory)) File.Delete(path);
        else Directory.Delete(path, recursive: true); // .NET does not follow links inside the tree
    }

    /// <summary>Read-only media, permissions and full disks are reported as such, not mistaken for a held lock.</summary>
    private static void ProbeWritable(string dir)
    {
        var probe = Path.Combine(dir, $".gate-probe-{Guid.NewGuid():N}");
        try { using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None)) { } }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GateInputException($"{dir}: the folder is not writable ({e.Message})") { Input = UserInput.OutputFolder };
        }
        File.Delete(probe);
    }

    private static string HolderJson()
    {
        using var self = Process.GetCurrentProcess();
        return new JsonObject
        {
            ["pid"] = Environment.ProcessId,
            ["host"] = Environment.MachineName,
            ["startedAt"] = self.StartTime.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            ["gate"] = DecisionRecord.CurrentGate().Version,
        }.ToJsonString();
    }

    /// <summary>"pid 123 on host h, started 2026-…Z" from the holder file, or null when there is none to read.</summary>
    private static string? DescribeHolder(string dir)
    {
        try
        {
            var h = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, WorkFolder, HolderFile)));
            return SafeText.Line($"pid {h?["pid"]} on host {h?["host"]}, started {h?["startedAt"]}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException) { return null; }
    }
}
