using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>
/// The process's one ONNX Runtime: which native library backs the official managed API, and the single
/// <see cref="OrtEnv"/> every session is built in. By default the library is the one the NuGet package puts beside
/// the application (Microsoft.ML.OnnxRuntime, or Microsoft.ML.OnnxRuntime.Gpu.Linux in the GPU build); the
/// variable <c>GATE_ORT_LIB</c> names another one (a custom or CUDA build) and wins. Nothing is loaded until the
/// first model is: a machine without ORT still runs everything else.
/// </summary>
public static class OrtLibrary
{
    /// <summary>The ORT release the packages pin (Directory.Packages.props); a GATE_ORT_LIB build must speak its API.</summary>
    public const string PackageVersion = "1.31";
    public const string PathVariable = "GATE_ORT_LIB";
    /// <summary>The name the managed API imports its native functions by.</summary>
    private const string NativeName = "onnxruntime";

    private static readonly Lock Gate = new();
    private static OrtEnv? env;

    /// <summary>
    /// The environment, created on first use. It must exist before any session option is touched: ORT logs through
    /// it, and appending a provider without it fails with "Attempt to use DefaultLogger" instead of the real error.
    /// Throws <see cref="GateComponentMissingException"/> when the library cannot be loaded.
    /// </summary>
    public static OrtEnv Env => Volatile.Read(ref env) ?? CreateOnce();

    /// <summary>ORT's version string (e.g. "1.31.1"), as recorded in every decision that ORT computed.</summary>
    public static string Version => Env.GetVersionString();

    /// <summary>The native library in use: GATE_ORT_LIB, else the package's copy beside the application.</summary>
    public static string LibraryPath { get; private set; } = "";

    /// <summary>Names of the execution providers compiled into the library (not a promise that they load).</summary>
    public static IReadOnlyList<string> AvailableProviders() => Env.GetAvailableProviders();

    /// <summary>Loads the library if possible; false with the reason otherwise (for tests and availability probes).</summary>
    public static bool TryLoad(out string? reason)
    {
        try { _ = Env; reason = null; return true; }
        catch (GateComponentMissingException e) { reason = e.Message; return false; }
    }

    /// <summary>The library GATE_ORT_LIB names, or null to use the package's; a name that is no file is an error naming the variable.</summary>
    public static string? CustomLibrary(string? overridePath)
    {
        if (string.IsNullOrEmpty(overridePath)) return null;
        if (File.Exists(overridePath)) return Path.GetFullPath(overridePath);
        throw new GateComponentMissingException(
            $"{PathVariable}={overridePath}: no such file. Point {PathVariable} at a libonnxruntime.so (ONNX Runtime ≥ {PackageVersion}), " +
            $"or unset it to use the ONNX Runtime that Gate's build ships (rebuild with ./scripts/setup.sh if it is missing)");
    }

    private static OrtEnv CreateOnce()
    {
        lock (Gate)
        {
            if (env is not null) return env;
            var custom = CustomLibrary(Environment.GetEnvironmentVariable(PathVariable));
            if (custom is not null)
            {
                // The managed API resolves "onnxruntime" with its own resolver unless told not to; ours maps it to the
                // user's file. One resolver per assembly, so this runs once, before the first native call.
                OrtEnv.DisableDllImportResolver = true;
                NativeLibrary.SetDllImportResolver(typeof(OrtEnv).Assembly,
                    (name, _, _) => name == NativeName ? NativeLibrary.Load(custom) : 0);
            }
            var where = custom ?? Path.Combine(AppContext.BaseDirectory, "libonnxruntime.so");
            try
            {
                // FATAL only: every error already reaches Gate as an exception carrying ORT's message (and becomes an
                // exception, a fallback reason or an INCONCLUSIVE reason); ORT's log lines would clutter the CLI's stderr.
                var options = new EnvironmentCreationOptions { logId = "gate", logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL };
                var created = OrtEnv.CreateInstanceWithOptions(ref options);
                LibraryPath = where;
                Volatile.Write(ref env, created);
                return created;
            }
            catch (Exception e) when (Unloadable(e) is { } cause)
            {
                throw new GateComponentMissingException($"cannot load ONNX Runtime from {where}: {cause.Message}" +
                    (custom is null ? " (rebuild Gate: the Microsoft.ML.OnnxRuntime package puts it beside the application)" : $" (set by {PathVariable})"), e);
            }
        }
    }

    /// <summary>The load failure inside <paramref name="e"/> (the managed API wraps it in a type initializer), or null if it is not one.</summary>
    private static Exception? Unloadable(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is DllNotFoundException or BadImageFormatException or EntryPointNotFoundException) return x;
        // The managed API's own check that the library speaks its API version (an older custom build).
        return e is TypeInitializationException or OnnxRuntimeException ? e.InnerException ?? e : null;
    }
}
