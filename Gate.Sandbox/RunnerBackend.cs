using Gate.Core.Decision;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Plan;
using Gate.Core.IO;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Protocol;

namespace Gate.Sandbox;

/// <summary>
/// How a <c>gate run</c> job ended: <see cref="Failure"/> null and the tensors written (name, file), or the
/// reason, with <see cref="InputError"/> when the runner blamed the input (model, tensors, names).
/// </summary>
public sealed record ModelRunOutcome(string? Failure, bool InputError, IReadOnlyList<(string Name, string File)> Outputs);

/// <summary>How one runner execution ended, as seen from outside: exit code, or a fault the host observed (OOM, deadline, engine lost).</summary>
public sealed record RunnerExit(int? ExitCode, string? Fault, string StderrTail = "");

/// <summary>
/// What every out-of-process backend shares: stage the job, run the self-test once, launch the runner (the one
/// thing a backend does differently), turn every way it can end into a <see cref="SandboxOutcome"/>, and only
/// accept results that validate. Any fault yields Completed = false, so the pipeline marks the checks INCONCLUSIVE.
/// </summary>
public abstract class RunnerBackend : ISandboxBackend
{
    private Task<JsonObject>? _selfTest;

    /// <summary>Where an outcome's details carry the sandbox's measured pass cost (<see cref="Gate.Core.Decision.PassCost"/>).</summary>
    public const string PassCostDetail = Gate.Core.Sandbox.SandboxOutcomeDetails.PassCost;

    public abstract string Name { get; }
    public abstract IsolationLevel AchievedIsolation { get; }
    /// <summary>Set by the selector when auto fell back to this backend: why the stronger one was not used.</summary>
    public string? FallbackReason { get; init; }

    /// <summary>The user the next sandbox runs as (a backend may pick a fresh one per run).</summary>
    protected virtual int NextUid() => JobStaging.SandboxUid;

    /// <summary>Tests only: makes the runner simulate this fault (see <c>Runner/FaultInjection.cs</c>).</summary>
    internal string? InjectFault { get; set; }

    /// <summary>Runs the runner on a staged job and waits for it within the limits; must leave nothing running behind.</summary>
    /// <param name="gpu">Give the sandbox the GPU; <paramref name="requireGpu"/> false means run without it when this host has none.</param>
    protected abstract Task<RunnerExit> LaunchAsync(StagedJob staged, ResourceLimits limits, bool gpu, bool requireGpu, bool faultsEnabled,
        Action<string> stdoutLine, CancellationToken ct);

    /// <summary>The uid the runner really runs as for this staged job (what its self-test must report).</summary>
    protected virtual long RunnerUid(StagedJob staged) => staged.Uid;

    /// <summary>Extra facts for decision.json (e.g. the image ID).</summary>
    protected virtual Task AddDetailsAsync(JsonObject details, CancellationToken ct) => Task.CompletedTask;

    public async Task<SandboxOutcome> RunAsync(SandboxJob job, string evidenceDir, IProgress<ProgressUpdate> progress, CancellationToken ct)
    {
        var details = new JsonObject();
        var selfTest = await SelfTestAsync(job.Limits, ct).ConfigureAwait(false);
        details["selfTest"] = selfTest.DeepClone();
        // No job runs in a sandbox whose self-test did not come back valid: its isolation is unverified, or the
        // runner lied about it.
        if (selfTest["error"]?.ToString() is { } selfTestError)
        {
            await AddDetailsAsync(details, ct).ConfigureAwait(false);
            return new SandboxOutcome(false, $"the sandbox self-test failed: {selfTestError}", [], AchievedIsolation, null, details);
        }
        using var staged = JobStaging.Stage(job, fault: InjectFault, uid: NextUid());
        var exit = await LaunchAsync(staged, job.Limits, job.UseGpu, job.RequireGpu, InjectFault is not null, line =>
        {
            if (JobProtocol.TryParseProgress(line, out var u)) progress.Report(u);
        }, ct).ConfigureAwait(false);
        // The backend has stopped and removed the sandbox; a cancelled run goes no further (staged is disposed on the way out).
        ct.ThrowIfCancellationRequested();
        await AddDetailsAsync(details, ct).ConfigureAwait(false);
        var fault = FaultOf(exit);
        if (fault is null)
        {
            try
            {
                var collected = JobStaging.Collect(staged, job, evidenceDir);
                if (collected.PassCost is { } cost) details[PassCostDetail] = JsonSerializer.SerializeToNode(cost, JobProtocol.Json);
                return new SandboxOutcome(true, null, collected.Results, AchievedIsolation, collected.Runtime, details);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                fault = $"sandbox results rejected: {e.Message}";
            }
        }
        return new SandboxOutcome(false, fault, [], AchievedIsolation, null, details);
    }

    /// <summary>
    /// <c>gate run</c> in this sandbox: stage the model and inputs, run, and accept the tensors only through the
    /// same validation as check evidence (requested result only, sizes and SHA-256 re-checked, regular files),
    /// and only under names the job asked for. They land in <paramref name="outputDir"/>. No self-test: no
    /// decision rests on it. Cancellation stops and removes the sandbox, then throws.
    /// </summary>
    public async Task<ModelRunOutcome> RunModelAsync(ModelRunJob job, string outputDir, CancellationToken ct)
    {
        using var staged = ModelRunStaging.Stage(job, NextUid());
        var exit = await LaunchAsync(staged, job.Limits, false, false, false, _ => { }, ct).ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
        if (FaultOf(exit) is { } fault) return new ModelRunOutcome(fault, false, []);
        try
        {
            // Names first (nothing is copied yet if one is foreign), then the validated copy into outputDir.
            var allowed = new HashSet<string>(job.ReturnableNames, StringComparer.Ordinal);
            // Read the way Collect reads it: no link followed at any depth, size capped.
            var claimed = System.Text.Json.JsonSerializer.Deserialize<RunnerResults>(
                UntrustedFiles.ReadAll(staged.TrustedParent, staged.ResultsRelative(RunnerResults.FileName), JobStaging.MaxResultsBytes), JobProtocol.Json)
                ?? throw new InvalidDataException("results.json is empty (null)");
            if (!claimed.Completed) return new ModelRunOutcome(Printable(claimed.Error ?? "the runner failed and gave no reason"), claimed.InputError, []);
            foreach (var e in claimed.Results?.SelectMany(r => r?.Evidence ?? []) ?? [])
                if (e is null || !allowed.Contains(e.Description))
                    throw new InvalidDataException($"the sandbox returned a tensor the job did not ask for ('{Printable(e?.Description)}')");
            var collected = JobStaging.Collect(staged, [JobManifest.RunResultId], outputDir);
            var outputs = collected.Results.SelectMany(r => r.Evidence).Select(e => (e.Description, Path.Combine(outputDir, e.Path))).ToList();
            return new ModelRunOutcome(null, false, outputs);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            return new ModelRunOutcome($"sandbox results rejected: {Printable(e.Message)}", false, []);
        }
    }

    /// <summary>Text from the sandbox, made inert for a terminal: control characters (escape sequences) become '?'.</summary>
    private static string Printable(string? text) => new((text ?? "").Select(c => char.IsControl(c) && c != '\n' ? '?' : c).ToArray());

    /// <summary>The runner's exit in words; null when it exited 0 or 1 (results.json then says what happened).</summary>
    private static string? FaultOf(RunnerExit exit)
    {
        if (exit.Fault is not null) return exit.Fault + Tail(exit.StderrTail);
        return exit.ExitCode switch
        {
            0 or 1 => null,
            137 => "the runner was killed (SIGKILL), e.g. for memory" + Tail(exit.StderrTail),
            134 => "the runner crashed (abort)" + Tail(exit.StderrTail),
            var c => $"the runner crashed (exit code {c})" + Tail(exit.StderrTail),
        };
    }

    private static string Tail(string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "" : $" — last output: {lines[^1]}";
    }

    /// <summary>
    /// The self-test under this backend's real configuration, run once per backend instance and embedded in every
    /// outcome. Its report is checked, not believed (<see cref="SelfTestCheck"/>); one that cannot run or does not
    /// check out carries an "error", and then no job runs (its checks are INCONCLUSIVE).
    /// </summary>
    public Task<JsonObject> SelfTestAsync(ResourceLimits limits, CancellationToken ct) => _selfTest ??= RunSelfTestAsync(limits, ct);

    private async Task<JsonObject> RunSelfTestAsync(ResourceLimits limits, CancellationToken ct)
    {
        var report = new JsonObject { ["backend"] = Name, ["isolation"] = AchievedIsolation.Name(), ["ranAt"] = DateTimeOffset.UtcNow.ToString("O") };
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepted = new StrongBox<int>();
        _ = AcceptAndDropAsync(listener, accepted);
        var (outsideHost, outsidePort) = OutsideTarget();
        var canary = Guid.NewGuid().ToString("N");
        const string canaryName = "GATE_SELFTEST_CANARY";
        // The canary lives in this (host) process's environment: it reaches the runner only if scrubbing fails.
        Environment.SetEnvironmentVariable(canaryName, canary);
        var baseline = HostCanReachAsync(outsideHost, outsidePort);
        var req = new SelfTestRequest("127.0.0.1", ((IPEndPoint)listener.LocalEndpoint).Port, outsideHost, outsidePort, canaryName, canary, limits.Pids,
            Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)));
        var job = new SandboxJob("", BoundPlan.Empty, false, false, limits);
        try
        {
            using var staged = JobStaging.Stage(job, req, uid: NextUid());
            var exit = await LaunchAsync(staged, limits with { Timeout = TimeSpan.FromSeconds(60) }, false, false, false, _ => { }, ct).ConfigureAwait(false);
            var fault = FaultOf(exit);
            if (fault is not null) report["error"] = fault;
            else
            {
                var claimed = JobStaging.CollectSelfTest(staged);
                int connections = Volatile.Read(ref accepted.Value) + (listener.Pending() ? 1 : 0);
                if (SelfTestCheck.Problem(claimed, req, RunnerUid(staged), connections) is { } problem)
                    report["error"] = $"the runner's self-test report was rejected: {problem}";
                else
                    foreach (var (k, v) in claimed) if (k != "nonce") report[k] = v?.DeepClone();
            }
        }
        catch (Exception e) when (e is not OperationCanceledException) { report["error"] = $"{e.GetType().Name}: {e.Message}"; }
        report["outsideReachableFromHost"] = await baseline.ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
        await AddDetailsAsync(report, ct).ConfigureAwait(false); // e.g. which image the self-test ran in
        return report;
    }

    private static (string, int) OutsideTarget()
    {
        var s = Environment.GetEnvironmentVariable("GATE_SELFTEST_OUTSIDE") ?? "1.1.1.1:443";
        int colon = s.LastIndexOf(':');
        return colon > 0 && int.TryParse(s[(colon + 1)..], out var p) ? (s[..colon], p) : (s, 443);
    }

    private static async Task AcceptAndDropAsync(TcpListener listener, StrongBox<int> accepted)
    {
        try
        {
            while (true)
            {
                (await listener.AcceptTcpClientAsync().ConfigureAwait(false)).Dispose();
                Interlocked.Increment(ref accepted.Value);
            }
        }
        catch (Exception e) when (e is ObjectDisposedException or SocketException or InvalidOperationException) { }
    }

    /// <summary>Whether the host itself reaches the outside target: a "blocked" inside means little if the host is offline too.</summary>
    private static async Task<bool> HostCanReachAsync(string host, int port)
    {
        try
        {
            using var c = new TcpClient();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await c.ConnectAsync(host, port, cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException) { return false; }
    }

    /// <summary>Keeps the last <paramref name="max"/> characters of a stream (stderr) for the fault reason.</summary>
    /// <summary>
    /// Runs a runner child process to its end or the job's deadline (then kills its whole tree): stdout line by line,
    /// stderr's tail kept, both through bounded readers, because the runner's output is untrusted and must not be able
    /// to exhaust the host's memory. Shared by the backends that start the runner as a child (process, bubblewrap).
    /// </summary>
    protected internal static async Task<RunnerExit> RunChildAsync(System.Diagnostics.ProcessStartInfo psi, ResourceLimits limits, Action<string> stdoutLine, CancellationToken ct)
    {
        var stderr = new TailBuffer();
        // Forked from a thread that outlives the child: a sandbox's parent-death signal follows the forking thread.
        using var child = OwnThreadChild.Start(psi);
        var proc = child.Process;
        proc.StandardInput.Close();
        var pumps = Task.WhenAll(
            BoundedLines.PumpAsync(proc.StandardOutput.BaseStream, stdoutLine, JobProtocol.MaxLineChars),
            BoundedLines.PumpAsync(proc.StandardError.BaseStream, stderr.Add, JobProtocol.MaxLineChars));

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(limits.Timeout > TimeSpan.Zero ? limits.Timeout : TimeSpan.FromMinutes(10));
        try
        {
            await proc.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { proc.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await proc.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            await Task.WhenAny(pumps, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
            return new RunnerExit(null, $"the sandbox exceeded its wall-clock deadline ({limits.Timeout}) and was killed", stderr.ToString());
        }
        // Last lines, but never wait long: something the runner left behind could hold the pipes open.
        await Task.WhenAny(pumps, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false);
        return new RunnerExit(proc.ExitCode, null, stderr.ToString());
    }

    protected sealed class TailBuffer(int max = 4096)
    {
        private readonly StringBuilder _sb = new();
        public void Add(string line)
        {
            lock (_sb)
            {
                _sb.Append(line).Append('\n');
                if (_sb.Length > max) _sb.Remove(0, _sb.Length - max);
            }
        }
        public override string ToString() { lock (_sb) return _sb.ToString(); }
    }
}
