using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Docker.DotNet;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Sandbox.Protocol;

namespace Gate.Sandbox.Docker;

/// <summary>
/// Runs the runner in a hardened container (<see cref="ContainerSpec"/>) from the image <c>gate sandbox build-image</c>
/// made. Every way a run can end — exit, OOM kill, deadline kill, engine lost — is turned into a
/// <see cref="RunnerExit"/>, and the container is removed afterwards (or swept on the next run if the engine was gone).
/// </summary>
public sealed class DockerBackend(DockerEngine client, string? image = null) : RunnerBackend
{
    public const string ImageRepository = "gate-sandbox-runner";
    /// <summary>Names another image than this gate's own runner (e.g. one built from docker/Dockerfile.cuda).</summary>
    public const string ImageVariable = "GATE_SANDBOX_IMAGE";
    /// <summary>How long removing a container may take, also after cancellation (it runs on its own clock).</summary>
    public static readonly TimeSpan RemoveTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Containers we could not remove because the engine was unreachable; removed on the next chance.</summary>
    private static readonly ConcurrentDictionary<string, byte> Orphans = new();

    public DockerEngine Client { get; } = client;
    // Computed on first use: hashing this gate's runner costs a moment, and an absent engine should not pay it.
    private readonly Lazy<string> _image = new(() => image ?? (Environment.GetEnvironmentVariable(ImageVariable) is { Length: > 0 } named ? named : RunnerImage.OwnTag));

    /// <summary>The image runs use: the one given, else GATE_SANDBOX_IMAGE, else this gate's own runner image (<see cref="RunnerImage.OwnTag"/>).</summary>
    public string Image => _image.Value;
    public override string Name => "docker";
    public override IsolationLevel AchievedIsolation => IsolationLevel.Container;
    public static string Owner => $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>
    /// A backend when an engine answers and the runner image exists; else null and <paramref name="whyNot"/> says
    /// why in words (auto then falls back to bubblewrap or the process backend and records the reason).
    /// </summary>
    public static DockerBackend? TryCreateReady(out string whyNot, CancellationToken ct = default)
    {
        DockerEngine client;
        try { client = DockerEngine.FromEnvironment(); }
        catch (Gate.Core.GateInputException e) { whyNot = e.Message; return null; }
        var backend = new DockerBackend(client);
        try
        {
            var silent = client.WhyNotAnsweringAsync(TimeSpan.FromSeconds(3), ct).GetAwaiter().GetResult();
            if (silent is not null) whyNot = silent;
            else if (client.InspectImageAsync(backend.Image, ct).GetAwaiter().GetResult() is null) whyNot = backend.MissingImage();
            else { whyNot = ""; return backend; }
        }
        catch (DockerApiException e) { whyNot = DockerEngine.MessageOf(e); }
        catch (Exception e) when (IsEngineFailure(e) || e is Gate.Core.GateComponentMissingException) { whyNot = e.Message; }
        client.Dispose();
        return null;
    }

    /// <summary>The image is not on this engine: what to do about it.</summary>
    private string MissingImage() => image is null && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(ImageVariable))
        ? $"the sandbox image {Image} (this gate's runner) is not built on {Client.Address}; run 'gate sandbox build-image'"
        : $"the sandbox image {Image} ({(image is null ? ImageVariable : "as given")}) does not exist on {Client.Address}";

    /// <summary>No engine, or it went away or silent: <see cref="DockerEngine"/> reports all of these as IOException.</summary>
    private static bool IsEngineFailure(Exception e) => e is IOException;

    protected override async Task AddDetailsAsync(JsonObject details, CancellationToken ct)
    {
        details["image"] = Image;
        if (GpuUnavailable is not null) details["gpuUnavailable"] = GpuUnavailable;
        try { details["imageId"] = (await Client.InspectImageAsync(Image, ct).ConfigureAwait(false))?.ID; }
        catch (Exception e) when (IsEngineFailure(e) || e is DockerApiException) { details["imageId"] = null; }
    }

    /// <summary>Set when an optional GPU was asked for but the engine could not provide one (recorded in decision.json).</summary>
    public string? GpuUnavailable { get; private set; }

    protected override async Task<RunnerExit> LaunchAsync(StagedJob staged, ResourceLimits limits, bool gpu, bool requireGpu, bool faultsEnabled,
        Action<string> stdoutLine, CancellationToken ct)
    {
        GpuUnavailable = null;
        var exit = await LaunchOnceAsync(staged, limits, gpu, faultsEnabled, stdoutLine, ct).ConfigureAwait(false);
        // gpu: optional on a host without the NVIDIA runtime: run on CPU rather than fail; required: the fault stands.
        if (gpu && !requireGpu && exit.ExitCode is null && exit.Fault?.Contains("device driver", StringComparison.OrdinalIgnoreCase) == true)
        {
            GpuUnavailable = exit.Fault;
            exit = await LaunchOnceAsync(staged, limits, false, faultsEnabled, stdoutLine, ct).ConfigureAwait(false);
        }
        return exit;
    }

    private async Task<RunnerExit> LaunchOnceAsync(StagedJob staged, ResourceLimits limits, bool gpu, bool faultsEnabled,
        Action<string> stdoutLine, CancellationToken ct)
    {
        string? id = null, name = null;
        var stderr = new TailBuffer();
        try
        {
            await SweepAsync(ct).ConfigureAwait(false);
            if (await Client.InspectImageAsync(Image, ct).ConfigureAwait(false) is null)
                return new RunnerExit(null, MissingImage());
            // Named before it exists: cancelled while the engine creates it, we still know what to remove.
            name = $"gate-sandbox-{Guid.NewGuid():N}";
            var spec = ContainerSpec.Create(Image, staged.JobDir, staged.ResultsDir, limits, gpu, faultsEnabled, Owner, name);
            // The user that owns the private job folder (the sandbox user when we are root, else ourselves).
            spec.User = $"{staged.Uid}:{staged.Gid}";
            id = await Client.CreateContainerAsync(spec, ct).ConfigureAwait(false);
            // Verified from outside before anything runs: the runner's own reports are not evidence of isolation.
            if (ContainerAudit.Mismatch(spec, await Client.InspectContainerAsync(id, ct).ConfigureAwait(false)) is { } mismatch)
                return new RunnerExit(null, $"the engine did not apply the sandbox configuration ({mismatch}); the runner was not started");
            await Client.StartContainerAsync(id, ct).ConfigureAwait(false);

            using var logsCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var logs = Client.FollowLogsAsync(id, (isStdout, line) => { if (isStdout) stdoutLine(line); else stderr.Add(line); }, logsCts.Token);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(limits.Timeout > TimeSpan.Zero ? limits.Timeout : TimeSpan.FromMinutes(10));
            long code;
            try { code = await Client.WaitContainerAsync(id, deadline.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                await Client.KillContainerAsync(id, CancellationToken.None).ConfigureAwait(false);
                logsCts.Cancel();
                return new RunnerExit(null, $"the sandbox exceeded its wall-clock deadline ({limits.Timeout}) and was killed", stderr.ToString());
            }
            var state = (await Client.InspectContainerAsync(id, ct).ConfigureAwait(false)).State;
            // Let the log stream deliver its last lines, but never wait on it for long.
            await Task.WhenAny(logs, Task.Delay(TimeSpan.FromSeconds(5), ct)).ConfigureAwait(false);
            logsCts.Cancel();
            if (state?.OOMKilled == true)
                return new RunnerExit((int)code, $"the sandbox was killed for memory (OOM; limit {limits.MemoryBytes} bytes, no swap)", stderr.ToString());
            return new RunnerExit((int)code, null, stderr.ToString());
        }
        catch (Exception e) when (IsEngineFailure(e))
        {
            return new RunnerExit(null, id is null ? (e is DockerTimeoutException ? e.Message : $"no Docker engine answers on {Client.SocketPath} ({e.Message})")
                : $"the Docker engine went away mid-run ({e.Message})", stderr.ToString());
        }
        catch (DockerApiException e)
        {
            return new RunnerExit(null, DockerEngine.MessageOf(e), stderr.ToString());
        }
        finally
        {
            // Also on cancellation (SIGINT/SIGTERM): force-removal kills a running container, on its own short clock.
            if ((id ?? name) is { } created) await RemoveAsync(created).ConfigureAwait(false);
        }
    }

    private async Task RemoveAsync(string id)
    {
        using var cts = new CancellationTokenSource(RemoveTimeout);
        try
        {
            await Client.RemoveContainerAsync(id, cts.Token).ConfigureAwait(false);
            Orphans.TryRemove(id, out _);
        }
        catch (Exception e) when (IsEngineFailure(e) || e is DockerApiException or OperationCanceledException) { Orphans[id] = 0; }
    }

    /// <summary>
    /// Removes sandbox containers left behind: ones we failed to remove (engine was away), and ones whose owning
    /// gate process on this machine no longer exists. Another live gate's containers are left alone.
    /// </summary>
    public async Task<int> SweepAsync(CancellationToken ct = default)
    {
        int removed = 0;
        foreach (var (id, labels) in await Client.ListContainersAsync($"{ContainerSpec.Label}=runner", ct).ConfigureAwait(false))
        {
            var owner = labels.TryGetValue(ContainerSpec.OwnerLabel, out var o) ? o : "";
            int colon = owner.LastIndexOf(':');
            bool ownerDead = colon > 0 && owner[..colon] == Environment.MachineName
                && int.TryParse(owner[(colon + 1)..], out var pid) && !ProcessAlive(pid);
            if (!Orphans.ContainsKey(id) && !ownerDead) continue;
            await Client.RemoveContainerAsync(id, ct).ConfigureAwait(false);
            Orphans.TryRemove(id, out _);
            removed++;
        }
        return removed;
    }

    private static bool ProcessAlive(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }
}
