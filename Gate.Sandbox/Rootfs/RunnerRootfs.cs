using System.Security.Cryptography;

namespace Gate.Sandbox.Rootfs;

/// <summary>
/// The runner's root filesystem: pinned Debian 13 packages (docker/rootfs/packages.lock, exact versions and SHA-256)
/// unpacked by docker/rootfs/build-rootfs.sh into .cache/rootfs/&lt;lock id&gt;/ — the C/C++ runtime and OpenSSL, no
/// shell, no package manager. The Docker image is this tree plus the runner FROM scratch; bubblewrap mounts this
/// same tree read-only as / and the runner beside it. Its identity covers the lock and the build script: the same
/// two, the same bytes.
/// </summary>
public static class RunnerRootfs
{
    /// <summary>A built rootfs folder to use instead of this checkout's (a gate copied out of its repository, tests).</summary>
    public const string Variable = "GATE_ROOTFS";
    /// <summary>Where build-rootfs.sh puts a copy of the lock it built from.</summary>
    public const string LockInRootfs = "etc/gate-rootfs.lock";
    /// <summary>Where build-rootfs.sh writes the rootfs's <see cref="Id"/>, last: the marker of a complete rootfs.</summary>
    public const string IdInRootfs = "etc/gate-rootfs.id";
    public const string LockInRepository = "docker/rootfs/packages.lock";
    public const string ScriptInRepository = "docker/rootfs/build-rootfs.sh";

    /// <summary>
    /// The built rootfs this gate uses: GATE_ROOTFS, else the one for this checkout's lock. Throws
    /// <see cref="Gate.Core.GateComponentMissingException"/> saying how to build it when there is none.
    /// </summary>
    public static string Locate()
    {
        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } given)
        {
            if (!File.Exists(Path.Combine(given, IdInRootfs)))
                throw new Gate.Core.GateComponentMissingException($"{Variable}={given} is not a built runner rootfs (no {IdInRootfs}); run docker/rootfs/build-rootfs.sh");
            return Path.GetFullPath(given);
        }
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var lockFile = Path.Combine(dir.FullName, LockInRepository);
            if (!File.Exists(lockFile)) continue;
            var built = Path.Combine(dir.FullName, ".cache", "rootfs", Id(lockFile, Path.Combine(dir.FullName, ScriptInRepository)));
            if (File.Exists(Path.Combine(built, IdInRootfs))) return built;
            throw new Gate.Core.GateComponentMissingException(
                $"the runner's root filesystem is not built ({built}); run docker/rootfs/build-rootfs.sh (scripts/setup.sh does)");
        }
        throw new Gate.Core.GateComponentMissingException(
            $"no runner root filesystem: this gate is outside its repository (no {LockInRepository} above {AppContext.BaseDirectory}); set {Variable} to one built by docker/rootfs/build-rootfs.sh");
    }

    /// <summary>
    /// The first 16 hex digits of the SHA-256 of the lock followed by the build script (as build-rootfs.sh computes
    /// it): the rootfs's folder name and its part of the image tag.
    /// </summary>
    public static string Id(string lockFile, string buildScript) =>
        Convert.ToHexStringLower(SHA256.HashData([.. File.ReadAllBytes(lockFile), .. File.ReadAllBytes(buildScript)]))[..16];

    /// <summary>The identity of a built rootfs (written into it by build-rootfs.sh).</summary>
    public static string IdOf(string rootfs) => File.ReadAllText(Path.Combine(rootfs, IdInRootfs)).Trim();
}
