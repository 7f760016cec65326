using Docker.DotNet.Models;
using Gate.Core.Policy;
using Gate.Sandbox.Protocol;

namespace Gate.Sandbox.Docker;

/// <summary>
/// The container the runner gets: no network, read-only root, no capabilities, no privilege gain, an unprivileged
/// user, pid/memory (no swap)/CPU limits from the policy, a small noexec /tmp, the job read-only, results the only
/// writable mount, and no host environment. A pure function so that the exact spec is unit-tested.
/// </summary>
public static class ContainerSpec
{
    public const string Label = "gate.sandbox";
    public const string OwnerLabel = "gate.sandbox.owner";
    public const string TmpfsOptions = "rw,noexec,nosuid,nodev,size=64m";

    public static CreateContainerParameters Create(string image, string jobDir, string resultsDir, ResourceLimits limits, bool gpu, bool faultsEnabled, string owner,
        string? name = null)
    {
        var host = new HostConfig
        {
            NetworkMode = "none",
            ReadonlyRootfs = true,
            CapDrop = ["ALL"],
            SecurityOpt = ["no-new-privileges"],
            Privileged = false,
            IpcMode = "private",
            PidsLimit = limits.Pids,
            Memory = limits.MemoryBytes,
            // Equal to Memory: no swap, so the memory limit is the limit.
            MemorySwap = limits.MemoryBytes,
            NanoCPUs = (long)Math.Round(limits.Cpus * 1e9),
            Tmpfs = new Dictionary<string, string> { ["/tmp"] = TmpfsOptions },
            Binds = [$"{jobDir}:/job:ro", $"{resultsDir}:/results:rw"],
            // The engine keeps container output on disk: bound it so a flooding runner cannot fill the host's disk.
            LogConfig = new LogConfig { Type = "json-file", Config = new Dictionary<string, string> { ["max-size"] = "10m", ["max-file"] = "1" } },
            AutoRemove = false, // we remove it ourselves, after reading its state (OOMKilled, exit code)
        };
        if (gpu)
            host.DeviceRequests = [new DeviceRequest { Driver = "nvidia", Count = -1, Capabilities = [["gpu"]] }];
        var env = new List<string>();
        if (faultsEnabled) env.Add("GATE_RUNNER_FAULTS=1");
        return new CreateContainerParameters
        {
            Name = name,
            Image = image,
            Cmd = ["--job", "/job", "--out", "/results"],
            User = $"{JobStaging.SandboxUid}:{JobStaging.SandboxGid}",
            // Only what the image itself sets (GATE_ORT_LIB, DOTNET_ROOT); nothing from the host.
            Env = env,
            WorkingDir = "/results",
            NetworkDisabled = true,
            AttachStdin = false, OpenStdin = false, Tty = false,
            Labels = new Dictionary<string, string> { [Label] = "runner", [OwnerLabel] = owner },
            HostConfig = host,
        };
    }
}
