using System.Text.Json;
using Docker.DotNet.Models;

namespace Gate.Sandbox.Docker;

/// <summary>
/// Reads back, from the engine, the configuration a created container will really run with and compares it with
/// what <see cref="ContainerSpec"/> asked for — before the runner starts. This is the host's own evidence of the
/// isolation, independent of anything the runner (or a compromised runner image) reports about itself.
/// </summary>
public static class ContainerAudit
{
    /// <summary>What differs between the requested spec and <c>docker inspect</c> of the created container; null when nothing does.</summary>
    public static string? Mismatch(CreateContainerParameters requested, ContainerInspectResponse inspected)
    {
        var want = requested.HostConfig;
        var got = inspected.HostConfig;
        var config = inspected.Config;
        if (want is null) return "the requested spec has no HostConfig";
        if (got is null || config is null) return "the engine's description of the container has no HostConfig/Config";
        var problems = new List<string>();
        void Same<T>(string what, T expected, T actual)
        {
            // Compared as JSON: lists and maps by content, an absent list equal only to an absent list.
            var e = JsonSerializer.Serialize(expected);
            var a = JsonSerializer.Serialize(actual);
            if (e != a) problems.Add($"{what} is {(actual is null ? "absent" : a)}, expected {(expected is null ? "absent" : e)}");
        }
        Same("NetworkMode", want.NetworkMode, got.NetworkMode);
        Same("ReadonlyRootfs", want.ReadonlyRootfs, got.ReadonlyRootfs);
        Same("Privileged", want.Privileged, got.Privileged);
        Same("CapDrop", want.CapDrop, got.CapDrop);
        if (got.CapAdd is { Count: > 0 } add) problems.Add($"CapAdd is {JsonSerializer.Serialize(add)}, expected none");
        Same("SecurityOpt", want.SecurityOpt, got.SecurityOpt);
        Same("PidsLimit", want.PidsLimit, got.PidsLimit);
        Same("Memory", want.Memory, got.Memory);
        Same("MemorySwap", want.MemorySwap, got.MemorySwap);
        Same("Binds", want.Binds, got.Binds);
        Same("User", requested.User, config.User);
        Same("Tmpfs", want.Tmpfs, got.Tmpfs);
        // An image's VOLUME would add a writable mount beside the read-only root: only our two binds may exist.
        int binds = want.Binds?.Count ?? 0;
        if (inspected.Mounts is not { } mounts || mounts.Count != binds)
            problems.Add($"the container has {inspected.Mounts?.Count.ToString() ?? "no list of"} mounts, expected only the {binds} bind mounts");
        return problems.Count == 0 ? null : string.Join("; ", problems);
    }
}
