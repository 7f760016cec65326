using System.Text;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>
/// Process-wide ORT objects: the one OrtEnv (ORT expects a single environment per process) and the CPU memory
/// description used to wrap managed buffers. Both live until the process exits, so sessions can never outlive them.
/// </summary>
internal static unsafe class OrtEnvironment
{
    // ORT_LOGGING_LEVEL_FATAL: every error already reaches Gate as a status carrying ORT's message (and becomes an
    // exception, a fallback reason or an INCONCLUSIVE reason); ORT's own log lines would only clutter the CLI's stderr.
    private const int LoggingLevelFatal = 4;
    private const int OrtDeviceAllocator = 0;
    private const int OrtMemTypeDefault = 0;

    private static readonly Lazy<(OrtEnvHandle Env, OrtMemoryInfoHandle Cpu)> State = new(Create, LazyThreadSafetyMode.ExecutionAndPublication);

    public static OrtEnvHandle Env => State.Value.Env;
    public static OrtMemoryInfoHandle CpuMemory => State.Value.Cpu;

    private static (OrtEnvHandle, OrtMemoryInfoHandle) Create()
    {
        var api = OrtLibrary.Api;
        var env = new OrtEnvHandle();
        var cpu = new OrtMemoryInfoHandle();
        nint raw;
        fixed (byte* id = Encoding.UTF8.GetBytes("gate\0"))
            api.Check(api.CreateEnv(LoggingLevelFatal, id, &raw));
        env.Attach(raw);
        api.Check(api.CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &raw));
        cpu.Attach(raw);
        return (env, cpu);
    }

    /// <summary>ORT's default CPU allocator (owned by ORT; never released).</summary>
    public static nint DefaultAllocator
    {
        get
        {
            var api = OrtLibrary.Api;
            nint a;
            api.Check(api.GetAllocatorWithDefaultOptions(&a));
            return a;
        }
    }
}
