using System.Runtime.InteropServices;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>
/// Finds and loads the ONNX Runtime native library, once per process. Lookup order: <c>GATE_ORT_LIB</c> (a user's own
/// build, e.g. with CUDA), then <c>.cache/onnxruntime/1.30.0/libonnxruntime.so.1</c> in the nearest folder above the
/// application (where <c>scripts/setup.d/10-onnxruntime.sh</c> puts the pinned, hash-checked library).
/// </summary>
public static class OrtLibrary
{
    public const string PinnedVersion = "1.30.0";
    public const string PathVariable = "GATE_ORT_LIB";
    public static readonly string CacheRelativePath = Path.Combine(".cache", "onnxruntime", PinnedVersion, "libonnxruntime.so.1");

    private static readonly Lock Gate = new();
    private static OrtApi? loaded;
    private static int loadCount;

    /// <summary>How many times the native library was loaded by this process (the contract is: at most once).</summary>
    public static int LoadCount => Volatile.Read(ref loadCount);

    /// <summary>The library path that would be loaded, or null with the reason (naming both ways to provide it).</summary>
    public static string? Locate(string? overridePath, string startDirectory, out string? reason)
    {
        reason = null;
        if (!string.IsNullOrEmpty(overridePath))
        {
            if (File.Exists(overridePath)) return Path.GetFullPath(overridePath);
            reason = $"{PathVariable}={overridePath}: no such file. Point {PathVariable} at a libonnxruntime.so, or unset it and run ./scripts/setup.sh to fetch ONNX Runtime {PinnedVersion}";
            return null;
        }
        for (var dir = new DirectoryInfo(startDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, CacheRelativePath);
            if (File.Exists(candidate)) return candidate;
        }
        reason = $"ONNX Runtime {PinnedVersion} is not installed: run ./scripts/setup.sh (fetches it into {CacheRelativePath}) " +
                 $"or set {PathVariable}=/path/to/libonnxruntime.so (searched above {startDirectory})";
        return null;
    }

    /// <summary>The API table, loading the library on first use. Throws <see cref="GateComponentMissingException"/> when it cannot.</summary>
    public static OrtApi Api => Volatile.Read(ref loaded) ?? LoadOnce();

    /// <summary>Loads the library if possible; false with the reason otherwise (for tests and availability probes).</summary>
    public static bool TryLoad(out string? reason)
    {
        try { _ = Api; reason = null; return true; }
        catch (GateComponentMissingException e) { reason = e.Message; return false; }
    }

    private static OrtApi LoadOnce()
    {
        lock (Gate)
        {
            if (loaded is not null) return loaded;
            var path = Locate(Environment.GetEnvironmentVariable(PathVariable), AppContext.BaseDirectory, out var reason)
                       ?? throw new GateComponentMissingException(reason!);
            nint lib;
            try { lib = NativeLibrary.Load(path); }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                throw new GateComponentMissingException($"cannot load ONNX Runtime from {path}: {e.Message}", e);
            }
            Interlocked.Increment(ref loadCount);
            // The library stays loaded for the life of the process: ORT objects may outlive any one caller.
            if (!NativeLibrary.TryGetExport(lib, "OrtGetApiBase", out var getApiBase))
                throw new GateComponentMissingException($"{path} is not ONNX Runtime (no OrtGetApiBase export)");
            var api = OrtApi.Create(getApiBase, path);
            Volatile.Write(ref loaded, api);
            return api;
        }
    }
}
