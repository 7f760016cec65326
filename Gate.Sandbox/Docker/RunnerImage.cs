using System.Diagnostics;
using System.Formats.Tar;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Gate.Sandbox.Process;
using Gate.Sandbox.Rootfs;

namespace Gate.Sandbox.Docker;

/// <summary>
/// Builds the runner image offline, FROM scratch: the runner's pinned Debian 13 root filesystem
/// (<see cref="RunnerRootfs"/>: C/C++ runtime and OpenSSL from packages.lock, the sandbox user, no shell, no package
/// manager) and the runner published self-contained for linux-x64 (or, for a framework-dependent runner folder, the
/// runner plus the .NET runtime copied from this host's install — the same bits a self-contained publish bundles),
/// which carries the ONNX Runtime library from its NuGet package. Nothing of the host's own system libraries.
/// Tagged by content hash only (never a shared :latest): a gate
/// asks for the tag of the image its own runner files make (<see cref="OwnTag"/>), so two checkouts on one engine
/// never run each other's runner.
/// </summary>
public static partial class RunnerImage
{
    private static readonly DateTimeOffset FixedTime = new(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public sealed record Built(string ImageId, string Tag, int Files, long Bytes, bool HasOnnxRuntime);

    public static async Task<Built> BuildAsync(DockerEngine client, string runnerDir, Action<string> log, CancellationToken ct = default)
    {
        var runner = RunnerDirFiles(runnerDir);
        bool selfContained = IsSelfContained(runnerDir);
        var rootfs = RunnerRootfs.Locate();
        var files = CollectFiles(runner, selfContained, out bool hasOrt);
        log($"image context: rootfs {rootfs} + {files.Count} files, runner {(selfContained ? "self-contained" : "framework-dependent + host runtime")}" +
            (hasOrt ? "" : $" (no {OrtLibraryFile} in the runner's output: ONNX Runtime jobs will be INCONCLUSIVE)"));
        var dockerfile = Dockerfile(selfContained);
        var tag = IdentityTag(dockerfile, runner, selfContained, RunnerRootfs.IdOf(rootfs));
        var tmp = Path.Combine(Path.GetTempPath(), $"gate-image-{Guid.NewGuid():N}.tar");
        long total = 0;
        try
        {
            await using (var fs = File.Create(tmp))
            await using (var tar = new TarWriter(fs, TarEntryFormat.Ustar, leaveOpen: false))
            {
                await AddBytes(tar, "Dockerfile", Encoding.UTF8.GetBytes(dockerfile), Mode(false), ct).ConfigureAwait(false);
                total += await AddTreeAsync(tar, rootfs, "rootfs", ct).ConfigureAwait(false);
                foreach (var (source, target) in files.OrderBy(f => f.Target, StringComparer.Ordinal))
                {
                    var bytes = await File.ReadAllBytesAsync(source, ct).ConfigureAwait(false);
                    total += bytes.Length;
                    await AddBytes(tar, "rootfs" + target, bytes, Mode(IsElfOrExecutable(source, bytes)), ct).ConfigureAwait(false);
                }
            }
            log($"building {tag} ({total / (1 << 20)} MiB) through the Engine API");
            string id;
            await using (var context = File.OpenRead(tmp))
                id = await client.BuildImageAsync(context, [tag], log, ct, new Dictionary<string, string> { [BuilderLabel] = BuilderId }).ConfigureAwait(false);
            return new Built(id, tag, files.Count, total, hasOrt);
        }
        finally { File.Delete(tmp); } // also when cancelled: no build context is left in the temp folder
    }

    /// <summary>
    /// The image tag: a hash over what makes one runner differ from another — the Dockerfile, every runner file's
    /// path and bytes (the ONNX Runtime library among them), and (framework-dependent runner) the .NET runtime's
    /// version and folder. The same inputs give the same tag, any change a new one. The system libraries copied in
    /// with them are not hashed: that would cost a gate start seconds (ldd, ~150 MB), and they follow the host.
    /// </summary>
    internal static string IdentityTag(string dockerfile, IEnumerable<(string Source, string Target)> runner, bool selfContained, string rootfsId)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string target, string source)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(target + "\0"));
            using var s = File.OpenRead(source);
            var buffer = new byte[1 << 20];
            int n;
            while ((n = s.Read(buffer)) > 0) sha.AppendData(buffer, 0, n);
            sha.AppendData("\0"u8);
        }
        sha.AppendData(Encoding.UTF8.GetBytes(dockerfile));
        // The root filesystem is pinned by its lock (versions and SHA-256 of every package): its id stands for its bytes.
        sha.AppendData(Encoding.UTF8.GetBytes($"rootfs\0{rootfsId}\0"));
        foreach (var (source, target) in runner.Where(f => f.Target.Length > 0).OrderBy(f => f.Target, StringComparer.Ordinal)) Add(target, source);
        if (!selfContained)
            sha.AppendData(Encoding.UTF8.GetBytes($"runtime\0{RuntimeInformation.FrameworkDescription}\0{RuntimeEnvironment.GetRuntimeDirectory()}\0"));
        return $"{DockerBackend.ImageRepository}:{Convert.ToHexStringLower(sha.GetHashAndReset())[..16]}";
    }

    /// <summary>
    /// Every build of Gate has its own image, so images pile up. Each image is labelled with the gate build (its
    /// folder) that built it, so <see cref="PruneAsync"/> removes only this build's older images, never another
    /// checkout's on the same machine.
    /// </summary>
    public const string BuilderLabel = "gate.sandbox.builder";
    public static string BuilderId { get; } =
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(AppContext.BaseDirectory))))[..16];

    /// <summary>Removes this gate build's runner images other than <paramref name="keep"/>; returns (tag, removed) for each.</summary>
    public static async Task<List<(string Tag, bool Removed)>> PruneAsync(DockerEngine client, string keep, CancellationToken ct = default)
    {
        var pruned = new List<(string, bool)>();
        foreach (var tag in await client.ListImageTagsAsync(DockerBackend.ImageRepository, $"{BuilderLabel}={BuilderId}", ct).ConfigureAwait(false))
            if (tag != keep) pruned.Add((tag, await client.RemoveImageAsync(tag, ct).ConfigureAwait(false)));
        return pruned;
    }

    private static readonly Lazy<string> Own = new(() => TagForRunnerBeside(AppContext.BaseDirectory));

    /// <summary>
    /// The tag of the image that <c>gate sandbox build-image</c> builds from the runner beside this gate: computed
    /// from the same files, so this build asks for exactly its own runner. Throws
    /// <see cref="Gate.Core.GateComponentMissingException"/> when the runner is not beside it.
    /// </summary>
    public static string OwnTag => Own.Value;

    /// <summary>What <see cref="OwnTag"/> computes, for the gate build in <paramref name="binDir"/>.</summary>
    public static string TagForRunnerBeside(string binDir)
    {
        var runner = RunnerFileNames(binDir).Select(n => (Path.Combine(binDir, n), "/gate/runner/" + n)).ToList();
        return IdentityTag(Dockerfile(selfContained: false), runner, selfContained: false, RunnerRootfs.IdOf(RunnerRootfs.Locate()));
    }

    /// <summary>
    /// Writes the runner and .NET runtime (the image's /gate/runner and /gate/dotnet) into a folder, for images
    /// built elsewhere on another base (docker/Dockerfile.cuda). Returns the number of files.
    /// </summary>
    public static int Export(string runnerDir, string outDir)
    {
        int n = 0;
        foreach (var (source, target) in CollectFiles(runnerDir, out _))
        {
            if (!target.StartsWith("/gate/runner/", StringComparison.Ordinal) && !target.StartsWith("/gate/dotnet/", StringComparison.Ordinal)) continue;
            var to = Path.Combine(outDir, target["/gate/".Length..]);
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(source, to, overwrite: true);
            n++;
        }
        return n;
    }

    private static UnixFileMode Mode(bool exec) => exec
        ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute
        : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <summary>
    /// Adds a folder tree under <paramref name="prefix"/> as it is: folders, regular files with their modes, and
    /// symbolic links as links (the usr-merge links, library sonames). Returns the bytes of file content added.
    /// </summary>
    private static async Task<long> AddTreeAsync(TarWriter tar, string root, string prefix, CancellationToken ct)
    {
        long bytes = 0;
        // Walked by hand: .NET's recursive enumeration descends into linked folders (/lib → usr/lib), which would add
        // the same files again under the link's path and make the engine's extraction fail.
        var entries = new List<FileSystemInfo>();
        var pending = new Stack<DirectoryInfo>([new DirectoryInfo(root)]);
        while (pending.TryPop(out var dir))
            foreach (var e in dir.EnumerateFileSystemInfos("*", new EnumerationOptions { AttributesToSkip = 0 }))
            {
                entries.Add(e);
                if (e is DirectoryInfo sub && e.LinkTarget is null) pending.Push(sub);
            }
        foreach (var e in entries.OrderBy(e => e.FullName, StringComparer.Ordinal))
        {
            var name = prefix + "/" + Path.GetRelativePath(root, e.FullName).Replace('\\', '/');
            // rwxr-xr-x at most: no setuid, nothing group/world-writable.
            var mode = (OperatingSystem.IsWindows() ? (UnixFileMode)0x1ED : File.GetUnixFileMode(e.FullName)) & (UnixFileMode)0x1ED;
            if (e.LinkTarget is { } target)
                await tar.WriteEntryAsync(new UstarTarEntry(TarEntryType.SymbolicLink, name) { LinkName = target, ModificationTime = FixedTime }, ct).ConfigureAwait(false);
            else if (e is DirectoryInfo)
                await tar.WriteEntryAsync(new UstarTarEntry(TarEntryType.Directory, name + "/") { Mode = mode, ModificationTime = FixedTime }, ct).ConfigureAwait(false);
            else
            {
                await using var data = File.OpenRead(e.FullName);
                bytes += data.Length;
                await tar.WriteEntryAsync(new UstarTarEntry(TarEntryType.RegularFile, name) { Mode = mode, ModificationTime = FixedTime, DataStream = data }, ct).ConfigureAwait(false);
            }
        }
        return bytes;
    }

    private static async Task AddBytes(TarWriter tar, string name, byte[] bytes, UnixFileMode mode, CancellationToken ct)
    {
        var entry = new UstarTarEntry(TarEntryType.RegularFile, name) { Mode = mode, ModificationTime = FixedTime, DataStream = new MemoryStream(bytes) };
        await tar.WriteEntryAsync(entry, ct).ConfigureAwait(false);
    }

    private static bool IsElfOrExecutable(string path, byte[] bytes) =>
        (bytes.Length > 4 && bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' && bytes[3] == 'F')
        || (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & UnixFileMode.UserExecute) != 0 && !path.EndsWith(".dll", StringComparison.Ordinal));

    /// <summary>A self-contained publish carries the runtime itself (libcoreclr.so beside the apphost).</summary>
    public static bool IsSelfContained(string runnerDir) =>
        File.Exists(Path.Combine(runnerDir, "libcoreclr.so")) && File.Exists(Path.Combine(runnerDir, "Gate.Sandbox.Runner"));

    /// <summary>The native ONNX Runtime library, which the runner's build output carries beside it (NuGet runtime asset).</summary>
    public const string OrtLibraryFile = "libonnxruntime.so";

    internal static string Dockerfile(bool selfContained = false) => $"""
        FROM scratch
        COPY rootfs/ /
        ENV {(selfContained ? "" : "DOTNET_ROOT=/gate/dotnet ")}DOTNET_EnableDiagnostics=0 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_gcServer=0
        USER 65534:65534
        WORKDIR /results
        LABEL org.opencontainers.image.title="gate sandbox runner" gate.sandbox.runner="1"
        ENTRYPOINT [{(selfContained ? "\"/gate/runner/Gate.Sandbox.Runner\"" : "\"/gate/dotnet/dotnet\", \"/gate/runner/Gate.Sandbox.Runner.dll\"")}]
        CMD ["--job", "/job", "--out", "/results"]

        """;

    /// <summary>(host path, path in image) for everything the image holds.</summary>
    internal static List<(string Source, string Target)> CollectFiles(string runnerDir, out bool hasOrt) =>
        CollectFiles(RunnerDirFiles(runnerDir), IsSelfContained(runnerDir), out hasOrt);

    /// <summary>A runner folder's files (host path, path in image).</summary>
    private static List<(string Source, string Target)> RunnerDirFiles(string runnerDir)
    {
        if (!File.Exists(Path.Combine(runnerDir, RunnerLocation.RunnerAssembly)))
            throw new Gate.Core.GateInputException($"{runnerDir} holds no {RunnerLocation.RunnerAssembly} (publish the runner first)");
        var runner = Directory.EnumerateFiles(runnerDir, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".pdb", StringComparison.Ordinal))
            .Select(f => (f, "/gate/runner/" + Path.GetRelativePath(runnerDir, f).Replace('\\', '/'))).ToList();
        return runner;
    }

    /// <summary>The runner's files (host path, path in image), plus the .NET runtime (framework-dependent runner).</summary>
    private static List<(string Source, string Target)> CollectFiles(IEnumerable<(string Source, string Target)> runner, bool selfContained, out bool hasOrt)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal); // target → source
        foreach (var (source, target) in runner)
            if (target.Length > 0) files[target] = source;
        if (!selfContained) AddHostRuntime(files);

        hasOrt = files.ContainsKey("/gate/runner/" + OrtLibraryFile);

        // The system libraries they need come from the pinned rootfs, not from this host.
        return files.Select(kv => (kv.Value, kv.Key)).ToList();
    }

    /// <summary>The .NET runtime of this host (dotnet host, hostfxr, Microsoft.NETCore.App) for a framework-dependent runner.</summary>
    private static void AddHostRuntime(Dictionary<string, string> files)
    {
        var framework = Path.TrimEndingDirectorySeparator(RuntimeEnvironment.GetRuntimeDirectory());
        var version = Path.GetFileName(framework);
        var root = Path.GetFullPath(Path.Combine(framework, "..", "..", ".."));
        files["/gate/dotnet/dotnet"] = Path.Combine(root, "dotnet");
        var fxr = Path.Combine(root, "host", "fxr", version, "libhostfxr.so");
        if (!File.Exists(fxr)) fxr = Directory.GetFiles(Path.Combine(root, "host", "fxr"), "libhostfxr.so", SearchOption.AllDirectories).Max()!;
        files[$"/gate/dotnet/host/fxr/{version}/libhostfxr.so"] = fxr;
        foreach (var f in Directory.EnumerateFiles(framework))
            files[$"/gate/dotnet/shared/Microsoft.NETCore.App/{version}/{Path.GetFileName(f)}"] = f;
    }

    /// <summary>
    /// Gathers the runner's own files (those its deps.json names, plus runtimeconfig/deps) from a build output
    /// folder that also holds other programs (gate, tests) into a fresh folder: the image gets the runner only.
    /// </summary>
    public static string RunnerFilesFrom(string binDir)
    {
        var names = RunnerFileNames(binDir);
        var outDir = Path.Combine(Path.GetTempPath(), $"gate-runner-{Guid.NewGuid():N}");
        Directory.CreateDirectory(outDir);
        foreach (var n in names) File.Copy(Path.Combine(binDir, n), Path.Combine(outDir, n));
        return outDir;
    }

    /// <summary>The runner's own files in a build output folder: those its deps.json names, plus runtimeconfig/deps.</summary>
    private static SortedSet<string> RunnerFileNames(string binDir)
    {
        var deps = Path.Combine(binDir, "Gate.Sandbox.Runner.deps.json");
        if (!File.Exists(deps)) throw new Gate.Core.GateComponentMissingException($"{binDir} holds no Gate.Sandbox.Runner.deps.json (build Gate.Sandbox/Runner first)");
        var names = new SortedSet<string>(StringComparer.Ordinal) { "Gate.Sandbox.Runner.deps.json", "Gate.Sandbox.Runner.runtimeconfig.json" };
        var doc = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(deps))!;
        foreach (var (_, target) in doc["targets"]!.AsObject())
            foreach (var (_, lib) in target!.AsObject())
                foreach (var kind in new[] { "runtime", "native" })
                    if (lib?[kind] is System.Text.Json.Nodes.JsonObject assets)
                        foreach (var (asset, _) in assets) names.Add(Path.GetFileName(asset));
        foreach (var n in names)
            if (!File.Exists(Path.Combine(binDir, n))) throw new Gate.Core.GateComponentMissingException($"runner file {Path.Combine(binDir, n)} is missing (rebuild Gate.Sandbox/Runner)");
        return names;
    }

    /// <summary>Publishes the runner self-contained for linux-x64 (Release, invariant globalization) into a fresh folder.</summary>
    public static string PublishRunner(string repoRoot, Action<string> log)
    {
        var outDir = Path.Combine(repoRoot, ".cache", "sandbox-runner");
        if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        var project = Path.Combine(repoRoot, "Gate.Sandbox", "Runner", "Gate.Sandbox.Runner.csproj");
        log($"dotnet publish {project}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "publish", project, "-c", "Release", "-r", "linux-x64", "--self-contained", "true", "-o", outDir, "-p:InvariantGlobalization=true", "-nologo", "-v", "quiet" }) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"dotnet publish failed ({p.ExitCode}): {so.Result}{se.Result}");
        return outDir;
    }
}
