using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Evidence;
using Gate.Core.IO;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Protocol;

namespace Gate.Sandbox.Slurm;

/// <param name="SharedDir">A folder every node sees at the same path: the job is staged under it, results come back through it.</param>
/// <param name="Retries">How many times a failed task is resubmitted before its shard counts as failed.</param>
/// <param name="Sandbox">The sandbox backend each task asks for on its node (default: auto, at least the policy's floor).</param>
/// <param name="GateCommand">How a node starts gate (default: this gate, at the same path; it must be installed there).</param>
public sealed record SlurmOptions(int Shards, string SharedDir, string? Partition = null, string? Gres = null, int Retries = 2, string? Sandbox = null)
{
    public IReadOnlyList<string>? GateCommand { get; init; }
    /// <summary>How often squeue is asked whether the array is still running.</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>The longest one round of tasks may take before it is cancelled and its unfinished tasks count as failed.</summary>
    public TimeSpan? RoundTimeout { get; init; }
    /// <summary>
    /// Tests only (no command-line flag sets it): a bash snippet each task runs before gate, with <c>$i</c> the shard
    /// and <c>$a</c> the attempt — how the fault tests kill a task.
    /// </summary>
    public string? TaskPrologue { get; init; }
}

/// <summary>
/// <c>--executor slurm</c>: stages the bound job on a shared folder, submits one <c>sbatch --array=0-(N-1)</c> whose
/// tasks each run <c>gate shard run</c> (the sandbox runner for that shard, in that node's sandbox), follows it with
/// squeue, resubmits failed tasks up to <see cref="SlurmOptions.Retries"/> times, and reads every shard's results as
/// untrusted input (<see cref="JobStaging.Collect"/>, as for a local sandbox). Tasks get no environment from the
/// submitting host (<c>--export=NONE</c>) and nothing but the staged job: the signing key never leaves this host.
/// Cancellation scancels every job it submitted and waits until Slurm has none of them left.
/// </summary>
public sealed class SlurmExecutor(SlurmOptions options) : IShardExecutor
{
    public string Name => "slurm";
    public int Shards { get; } = options.Shards >= 1 ? options.Shards : throw new GateInputException($"--shards must be at least 1 (got {options.Shards})");
    public bool UsesHostSandbox => false;

    /// <summary>The job ids this executor submitted (for tests and for the cancellation path).</summary>
    public IReadOnlyList<string> SubmittedJobs => _jobs;
    private readonly List<string> _jobs = [];

    public async Task<IReadOnlyList<ShardRun>> RunAsync(SandboxJob job, ISandboxBackend? sandbox, IsolationLevel floor, string workDir, IProgress<ProgressUpdate> progress, CancellationToken ct)
    {
        if (!Directory.Exists(options.SharedDir)) throw new GateInputException($"--shared-dir {options.SharedDir}: no such folder (it must be visible to every node)");
        // A fresh, private (0700) folder per run: other users of the shared folder see neither the model nor the data.
        var stage = Path.Combine(Path.GetFullPath(options.SharedDir), "gate-slurm-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)));
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(stage);
        else Directory.CreateDirectory(stage, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            var jobDir = Path.Combine(stage, "job");
            StagedShardJob.Stage(job, floor, Shards, jobDir);
            var script = Path.Combine(stage, "task.sh");
            File.WriteAllText(script, TaskScript(stage, jobDir));
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.UserWrite);

            var done = new ShardRun?[Shards];
            var lastExit = new int?[Shards];
            var pending = Enumerable.Range(0, Shards).ToList();
            for (int attempt = 1; pending.Count > 0 && attempt <= 1 + Math.Max(0, options.Retries); attempt++)
            {
                var jobId = await SubmitAsync(stage, script, pending, attempt, job.Limits, ct).ConfigureAwait(false);
                progress.Report(new ProgressUpdate("slurm", $"job {jobId} attempt {attempt}", 0, pending.Count, "tasks"));
                await FollowAsync(jobId, ct).ConfigureAwait(false);
                var failed = new List<int>();
                foreach (var i in pending)
                {
                    var run = Collect(job, stage, workDir, i, attempt, out lastExit[i]);
                    done[i] = run;
                    if (!run.Outcome.Completed) failed.Add(i);
                }
                pending = failed;
            }
            return done.Select((r, i) => r ?? Missing(i, "never ran")).ToList();
        }
        finally
        {
            try { JobStaging.RemoveTree(stage); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private string TaskScript(string stage, string jobDir)
    {
        var gate = options.GateCommand ?? DefaultGateCommand();
        var q = (string s) => "'" + s.Replace("'", "'\"'\"'", StringComparison.Ordinal) + "'";
        var sb = new StringBuilder();
        sb.AppendLine("#!/bin/bash");
        sb.AppendLine("# One shard of a gate check (written by gate's Slurm executor): runs the shard in this node's sandbox.");
        sb.AppendLine("set -u");
        sb.AppendLine("i=\"$SLURM_ARRAY_TASK_ID\"; a=\"${GATE_ATTEMPT:-1}\"");
        sb.AppendLine($"out={q(stage)}/shard-$i/attempt-$a");
        sb.AppendLine("mkdir -p \"$out\" && echo \"${SLURMD_NODENAME:-$(hostname)}\" > \"$out/node\"");
        // --export=NONE: the task sees nothing of the submitting environment; these are the only variables it gets.
        sb.AppendLine($"export PATH={q(Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin")} HOME=\"$out\"");
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { } root) sb.AppendLine($"export DOTNET_ROOT={q(root)}");
        sb.AppendLine("export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1");
        if (options.TaskPrologue is { } prologue) sb.AppendLine(prologue);
        var args = new List<string>(gate) { "shard", "run", "--job", jobDir, "--shard", "$i", "--out", "$out" };
        if (options.Sandbox is { } s) args.AddRange(["--sandbox", s]);
        sb.AppendLine(string.Join(' ', args.Select(x => x.StartsWith('$') ? $"\"{x}\"" : q(x))));
        sb.AppendLine("rc=$?; echo \"$rc\" > \"$out/exit\"; exit \"$rc\"");
        return sb.ToString();
    }

    /// <summary>This gate as a node starts it: the same executable (or dotnet and the same gate.dll) at the same path.</summary>
    public static IReadOnlyList<string> DefaultGateCommand()
    {
        var exe = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell where this gate executable is");
        var dll = System.Reflection.Assembly.GetEntryAssembly()?.Location;
        return Path.GetFileNameWithoutExtension(exe) == "dotnet" && dll is { Length: > 0 } ? [exe, dll] : [exe];
    }

    private async Task<string> SubmitAsync(string stage, string script, List<int> shards, int attempt, ResourceLimits limits, CancellationToken ct)
    {
        int cpus = Math.Max(1, (int)Math.Ceiling(limits.Cpus));
        // Slurm ends a task that never completes: the policy's deadline plus a margin for gate's start and the self-test.
        long minutes = limits.Timeout > TimeSpan.Zero ? (long)Math.Ceiling(limits.Timeout.TotalMinutes) + 5 : 0;
        var args = new List<string>
        {
            "--parsable", $"--array={string.Join(',', shards)}", $"--job-name=gate-{Path.GetFileName(stage)}",
            $"--output={stage}/slurm-%A_%a.out", $"--cpus-per-task={cpus}", $"--export=NONE,GATE_ATTEMPT={attempt}", "--chdir", stage,
        };
        if (minutes > 0) args.Add($"--time={minutes}");
        if (options.Partition is { } p) args.Add($"--partition={p}");
        if (options.Gres is { } g) args.Add($"--gres={g}");
        args.Add(script);
        var (code, stdout, stderr) = await Slurm.RunAsync("sbatch", args, ct).ConfigureAwait(false);
        if (code != 0) throw new InvalidOperationException($"sbatch failed (exit {code}): {stderr.Trim()}");
        var id = stdout.Trim().Split(';')[0];
        if (id.Length == 0 || !id.All(char.IsAsciiDigit)) throw new InvalidOperationException($"sbatch printed no job id: '{stdout.Trim()}'");
        lock (_jobs) _jobs.Add(id);
        return id;
    }

    /// <summary>Waits until squeue lists none of the job's tasks; on cancellation, scancels every submitted job first.</summary>
    private async Task FollowAsync(string jobId, CancellationToken ct)
    {
        var started = Stopwatch.StartNew();
        try
        {
            while (true)
            {
                await Task.Delay(options.Poll, ct).ConfigureAwait(false);
                var (code, stdout, _) = await Slurm.RunAsync("squeue", ["-h", "-j", jobId, "-o", "%i %T"], ct).ConfigureAwait(false);
                // squeue exits non-zero for a job id it no longer knows: the job is over either way.
                if (code != 0 || stdout.Trim().Length == 0) return;
                if (options.RoundTimeout is { } limit && started.Elapsed > limit)
                {
                    await Slurm.RunAsync("scancel", [jobId], CancellationToken.None).ConfigureAwait(false);
                    await WaitGoneAsync([jobId]).ConfigureAwait(false);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            List<string> ids;
            lock (_jobs) ids = [.. _jobs];
            foreach (var id in ids) await Slurm.RunAsync("scancel", [id], CancellationToken.None).ConfigureAwait(false);
            await WaitGoneAsync(ids).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Waits (at most a minute) until squeue lists none of <paramref name="ids"/>: cancelled means gone, not "going".</summary>
    private static async Task WaitGoneAsync(IReadOnlyList<string> ids)
    {
        for (int k = 0; k < 120; k++)
        {
            var (code, stdout, _) = await Slurm.RunAsync("squeue", ["-h", "-j", string.Join(',', ids), "-o", "%i"], CancellationToken.None).ConfigureAwait(false);
            if (code != 0 || stdout.Trim().Length == 0) return;
            await Task.Delay(500).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// One shard's attempt as the host accepts it: results.json and its evidence validated as untrusted input (no
    /// link followed, sizes capped, ids and digests checked) and copied into a host folder; anything else is a fault.
    /// </summary>
    private ShardRun Collect(SandboxJob job, string stage, string workDir, int i, int attempt, out int? exit)
    {
        var shardDir = Path.Combine(stage, $"shard-{i}");
        string attemptName = $"attempt-{attempt}";
        string? Small(string name)
        {
            try { return Encoding.UTF8.GetString(UntrustedFiles.ReadAll(shardDir, $"{attemptName}/{name}", 4096)).Trim(); }
            catch (Exception e) when (e is UnsafeFileException or IOException) { return null; }
        }
        string? node = Small("node");
        exit = int.TryParse(Small("exit"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var x) ? x : null;
        var evidence = Path.Combine(workDir, $"shard-{i}");
        if (Directory.Exists(evidence)) Directory.Delete(evidence, true);
        Directory.CreateDirectory(evidence);
        var staged = new StagedJob(Path.Combine(shardDir, attemptName), Path.Combine(stage, "job"), Path.Combine(shardDir, attemptName, "results"));
        var isolation = IsolationLevel.None;
        JsonObject? details = null;
        try
        {
            var infoBytes = UntrustedFiles.ReadAll(shardDir, $"{attemptName}/results/{ShardTask.InfoFileName}", 64 * 1024);
            var info = JsonNode.Parse(infoBytes) as JsonObject;
            if (IsolationLevels.TryParse(info?["isolation"]?.GetValue<string>(), out var level)) isolation = level;
            details = new JsonObject { ["backend"] = info?["backend"]?.GetValue<string>(), ["imageId"] = info?["imageId"]?.DeepClone(), ["image"] = info?["image"]?.DeepClone() };
        }
        catch (Exception e) when (e is UnsafeFileException or IOException or System.Text.Json.JsonException or InvalidOperationException) { }
        SandboxOutcome outcome;
        if (exit is null)
            outcome = new SandboxOutcome(false, $"task {i} (attempt {attempt}{(node is null ? "" : $" on {node}")}) ended without an exit status: killed, cancelled or its node failed", [], isolation, null);
        else
        {
            try
            {
                var collected = JobStaging.Collect(staged, job, evidence);
                outcome = new SandboxOutcome(true, null, collected.Results, isolation, collected.Runtime, details);
            }
            catch (InvalidDataException e)
            { outcome = new SandboxOutcome(false, $"task {i} (attempt {attempt}{(node is null ? "" : $" on {node}")}, exit {exit}): {e.Message}", [], isolation, null); }
        }
        return new ShardRun(i, outcome, evidence, node, exit, attempt);
    }

    private static ShardRun Missing(int i, string why) =>
        new(i, new SandboxOutcome(false, $"shard {i} {why}", [], IsolationLevel.None, null), "", null, null, 0);
}

/// <summary>Runs a Slurm client command (sbatch, squeue, scancel) with its output captured.</summary>
public static class Slurm
{
    public static bool Available => Find("sbatch") is not null && Find("squeue") is not null;

    private static string? Find(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    public static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string tool, IEnumerable<string> args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(Find(tool) ?? throw new GateComponentMissingException($"{tool} not found on PATH: the Slurm executor needs the Slurm client tools"))
        { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync(ct);
        var e = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        return (p.ExitCode, await o.ConfigureAwait(false), await e.ConfigureAwait(false));
    }
}
