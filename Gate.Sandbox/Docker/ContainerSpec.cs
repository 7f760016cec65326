using System.Text.Json.Nodes;
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

    public static JsonObject Create(string image, string jobDir, string resultsDir, ResourceLimits limits, bool gpu, bool faultsEnabled, string owner)
    {
        var host = new JsonObject
        {
            ["NetworkMode"] = "none",
            ["ReadonlyRootfs"] = true,
            ["CapDrop"] = new JsonArray("ALL"),
            ["SecurityOpt"] = new JsonArray("no-new-privileges"),
            ["Privileged"] = false,
            ["IpcMode"] = "private",
            ["PidsLimit"] = limits.Pids,
            ["Memory"] = limits.MemoryBytes,
            // Equal to Memory: no swap, so the memory limit is the limit.
            ["MemorySwap"] = limits.MemoryBytes,
            ["NanoCpus"] = (long)Math.Round(limits.Cpus * 1e9),
            ["Tmpfs"] = new JsonObject { ["/tmp"] = TmpfsOptions },
            ["Binds"] = new JsonArray($"{jobDir}:/job:ro", $"{resultsDir}:/results:rw"),
            // The engine keeps container output on disk: bound it so a flooding runner cannot fill the host's disk.
            ["LogConfig"] = new JsonObject { ["Type"] = "json-file", ["Config"] = new JsonObject { ["max-size"] = "10m", ["max-file"] = "1" } },
            ["AutoRemove"] = false, // we remove it ourselves, after reading its state (OOMKilled, exit code)
        };
        if (gpu)
            host["DeviceRequests"] = new JsonArray(new JsonObject
            {
                ["Driver"] = "nvidia", ["Count"] = -1, ["Capabilities"] = new JsonArray(new JsonArray("gpu")),
            });
        var env = new JsonArray();
        if (faultsEnabled) env.Add("GATE_RUNNER_FAULTS=1");
        return new JsonObject
        {
            ["Image"] = image,
            ["Cmd"] = new JsonArray("--job", "/job", "--out", "/results"),
            ["User"] = $"{JobStaging.SandboxUid}:{JobStaging.SandboxGid}",
            // Only what the image itself sets (GATE_ORT_LIB, DOTNET_ROOT); nothing from the host.
            ["Env"] = env,
            ["WorkingDir"] = "/results",
            ["NetworkDisabled"] = true,
            ["AttachStdin"] = false, ["OpenStdin"] = false, ["Tty"] = false,
            ["Labels"] = new JsonObject { [Label] = "runner", [OwnerLabel] = owner },
            ["HostConfig"] = host,
        };
    }
}
