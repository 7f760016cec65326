using System.Diagnostics;
using System.Formats.Tar;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Gate.Sandbox.Process;

namespace Gate.Sandbox.Docker;

/// <summary>
/// Builds the runner image offline, FROM scratch: the runner published self-contained for linux-x64 (or, for a
/// framework-dependent runner folder, the runner plus the .NET runtime copied from this host's install — the same
/// bits a self-contained publish bundles), the ONNX Runtime library, only the shared
/// libraries those load (ldd, plus OpenSSL, which .NET loads with dlopen for SHA-256), and a passwd entry for the
/// unprivileged user. No shell, no package manager. Tagged by content hash only (never a shared :latest): a gate
/// asks for the tag of the image its own runner files make (<see cref="OwnTag"/>), so two checkouts on one engine
/// never run each other's runner.
/// </summary>
public static partial class RunnerImage
{
    public const string OrtPathInImage = "/gate/ort/libonnxruntime.so.1";
    private static readonly DateTimeOffset FixedTime = new(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Libraries loaded with dlopen (so ldd cannot see them) that the runner needs.</summary>
    private static readonly string[] DlopenLibraries = ["libssl.so.3", "libcrypto.so.3"];

    public sealed record Built(string ImageId, string Tag, int Files, long Bytes, bool HasOnnxRuntime);

    public static async Task<Built> BuildAsync(DockerEngine client, string runnerDir, Action<string> log, CancellationToken ct = default)
    {
        var runner = RunnerDirFiles(runnerDir);
        bool selfContained = IsSelfContained(runnerDir);
        var files = CollectFiles(runner, selfContained, out bool hasOrt);
        log($"image context: {files.Count} files, runner {(selfContained ? "self-contained" : "framework-dependent + host runtime")}" +
            (hasOrt ? "" : " (no ONNX Runtime library found: GATE_ORT_LIB or .cache/onnxruntime/1.30.0)"));
        var dockerfile = Dockerfile(hasOrt, selfContained);
        var tag = IdentityTag(dockerfile, runner, selfContained);
        var tmp = Path.Combine(Path.GetTempPath(), $"gate-image-{Guid.NewGuid():N}.tar");
        long total = 0;
        try
        {
            await using (var fs = File.Create(tmp))
            await using (var tar = new TarWriter(fs, TarEntryFormat.Ustar, leaveOpen: false))
            {
                await AddBytes(tar, "Dockerfile", Encoding.UTF8.GetBytes(dockerfile), Mode(false), ct).ConfigureAwait(false);
                foreach (var dir in new[] { "rootfs/job", "rootfs/results", "rootfs/tmp", "rootfs/etc" })
                    await tar.WriteEntryAsync(new UstarTarEntry(TarEntryType.Directory, dir + "/") { Mode = Mode(true), ModificationTime = FixedTime }, ct).ConfigureAwait(false);
                await AddBytes(tar, "rootfs/etc/passwd", "root:x:0:0:root:/nonexistent:/nonexistent\nsandbox:x:65534:65534:gate sandbox:/nonexistent:/nonexistent\n"u8.ToArray(), Mode(false), ct).ConfigureAwait(false);
                await AddBytes(tar, "rootfs/etc/group", "root:x:0:\nsandbox:x:65534:\n"u8.ToArray(), Mode(false), ct).ConfigureAwait(false);
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
    /// path and bytes, the ONNX Runtime library's bytes, and (framework-dependent runner) the .NET runtime's
    /// version and folder. The same inputs give the same tag, any change a new one. The system libraries copied in
    /// with them are not hashed: that would cost a gate start seconds (ldd, ~150 MB), and they follow the host.
    /// </summary>
    internal static string IdentityTag(string dockerfile, IEnumerable<(string Source, string Target)> runner, bool selfContained)
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
        foreach (var (source, target) in runner.Where(f => f.Target.Length > 0).OrderBy(f => f.Target, StringComparer.Ordinal)) Add(target, source);
        if (RunnerLocation.OrtLibraryPath() is { } ort) Add(OrtPathInImage, ort);
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
        return IdentityTag(Dockerfile(RunnerLocation.OrtLibraryPath() is not null, selfContained: false), runner, selfContained: false);
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

    internal static string Dockerfile(bool hasOrt, bool selfContained = false) => $"""
        FROM scratch
        COPY rootfs/ /
        ENV {(selfContained ? "" : "DOTNET_ROOT=/gate/dotnet ")}DOTNET_EnableDiagnostics=0 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_gcServer=0{(hasOrt ? " GATE_ORT_LIB=" + OrtPathInImage : "")}
        USER 65534:65534
        WORKDIR /results
        LABEL org.opencontainers.image.title="gate sandbox runner" gate.sandbox.runner="1"
        ENTRYPOINT [{(selfContained ? "\"/gate/runner/Gate.Sandbox.Runner\"" : "\"/gate/dotnet/dotnet\", \"/gate/runner/Gate.Sandbox.Runner.dll\"")}]
        CMD ["--job", "/job", "--out", "/results"]

        """;

    /// <summary>(host path, path in image) for everything the image holds.</summary>
    internal static List<(string Source, string Target)> CollectFiles(string runnerDir, out bool hasOrt) =>
        CollectFiles(RunnerDirFiles(runnerDir), IsSelfContained(runnerDir), out hasOrt);

    /// <summary>A runner folder's files (host path, path in image); a self-contained one's ELF also with an empty path, which only feeds ldd.</summary>
    private static List<(string Source, string Target)> RunnerDirFiles(string runnerDir)
    {
        if (!File.Exists(Path.Combine(runnerDir, RunnerLocation.RunnerAssembly)))
            throw new Gate.Core.GateInputException($"{runnerDir} holds no {RunnerLocation.RunnerAssembly} (publish the runner first)");
        var runner = Directory.EnumerateFiles(runnerDir, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".pdb", StringComparison.Ordinal))
            .Select(f => (f, "/gate/runner/" + Path.GetRelativePath(runnerDir, f).Replace('\\', '/'))).ToList();
        if (IsSelfContained(runnerDir)) runner.Add((Path.Combine(runnerDir, "Gate.Sandbox.Runner"), ""));
        return runner;
    }

    /// <summary>The runner's files (host path, path in image; an empty path only feeds ldd), plus runtime, ONNX Runtime and libraries.</summary>
    private static List<(string Source, string Target)> CollectFiles(IEnumerable<(string Source, string Target)> runner, bool selfContained, out bool hasOrt)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal); // target → source
        var elvesFromRunner = new List<string>();
        foreach (var (source, target) in runner)
            if (target.Length == 0) elvesFromRunner.Add(source); else files[target] = source;
        if (!selfContained) AddHostRuntime(files);

        var ort = RunnerLocation.OrtLibraryPath();
        hasOrt = ort is not null;
        if (ort is not null) files[OrtPathInImage] = ort;

        var elves = files.Where(kv => kv.Key.EndsWith(".so", StringComparison.Ordinal) || kv.Key.Contains(".so.", StringComparison.Ordinal) || kv.Key == "/gate/dotnet/dotnet")
            .Select(kv => kv.Value).Concat(elvesFromRunner).ToList();
        foreach (var lib in DlopenLibraries) if (Ldconfig(lib) is { } p) { files[p] = p; elves.Add(p); }
        foreach (var dep in Ldd(elves)) files[dep] = dep;
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

    [GeneratedRegex(@"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")]
    private static partial Regex LddPath();

    /// <summary>Absolute paths of the shared libraries (and loader) the given ELF files need, as ldd resolves them.</summary>
    internal static SortedSet<string> Ldd(IEnumerable<string> elfFiles)
    {
        var result = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var file in elfFiles.Distinct())
        {
            var output = RunTool("ldd", file);
            foreach (Match m in LddPath().Matches(output))
                if (File.Exists(m.Groups[1].Value)) result.Add(m.Groups[1].Value);
        }
        return result;
    }

    private static string? Ldconfig(string soname)
    {
        foreach (var line in RunTool("ldconfig", "-p").Split('\n'))
        {
            var t = line.Trim();
            if (t.StartsWith(soname + " ", StringComparison.Ordinal) && t.Contains("x86-64", StringComparison.Ordinal))
                return t[(t.LastIndexOf("=> ", StringComparison.Ordinal) + 3)..].Trim();
        }
        return null;
    }

    private static string RunTool(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {tool}");
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return stdout;
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
