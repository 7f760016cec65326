using System.Runtime.InteropServices;

namespace Gate.Core.Platform;

/// <summary>
/// The calling thread's floating-point environment (x87 and SSE control on x86-64, FPCR on AArch64), saved and
/// restored through libm's <c>fegetenv</c>/<c>fesetenv</c>. Native runtimes change it behind our back: ONNX Runtime's
/// first session in a process switches flush-to-zero and denormals-are-zero on for the thread that creates it, for
/// good, and threads created from that thread inherit it. In Gate that leak made the same arithmetic on host threads
/// flush or not depending on which thread had opened a session first (static inspection's subnormal count, the
/// built-in engine's results). So native calls run between a save and a restore, and where flushing is wanted it is
/// switched on for the call only.
/// </summary>
internal static unsafe class FloatingPointEnvironment
{
    /// <summary>glibc's fenv_t: 32 bytes on x86-64, 8 on AArch64; the buffer leaves room.</summary>
    private const int EnvBytes = 64;
    /// <summary>x86-64: the MXCSR word sits at byte 28 of fenv_t; FTZ is bit 15, DAZ bit 6.</summary>
    private const int MxcsrOffset = 28;
    private const uint MxcsrFlushToZero = 1u << 15, MxcsrDenormalsAreZero = 1u << 6;
    /// <summary>AArch64: FPCR is the first word of fenv_t; FZ (bit 24) flushes subnormal inputs and results.</summary>
    private const uint FpcrFlushToZero = 1u << 24;

    [DllImport("libm.so.6", EntryPoint = "fegetenv")] private static extern int GetEnv(byte* env);
    [DllImport("libm.so.6", EntryPoint = "fesetenv")] private static extern int SetEnv(byte* env);

    /// <summary>Whether this process can switch flushing on for a call (glibc layouts known for these two CPUs).</summary>
    public static bool CanFlushDenormals { get; } =
        OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    /// <summary>Runs <paramref name="action"/>, then puts the thread's floating-point environment back as it was.</summary>
    public static T Preserving<T>(Func<T> action) => Run(action, flush: null);

    /// <summary>
    /// Runs <paramref name="action"/> with subnormal inputs read as zero and subnormal results flushed to zero on this
    /// thread (where <see cref="CanFlushDenormals"/>; elsewhere it only preserves), then restores the environment.
    /// </summary>
    public static T WithDenormalsFlushed<T>(Func<T> action) => Run(action, flush: true);

    /// <summary>Runs <paramref name="action"/> with IEEE subnormals on this thread (flushing switched off), then restores.</summary>
    public static T WithDenormalsKept<T>(Func<T> action) => Run(action, flush: false);

    private static T Run<T>(Func<T> action, bool? flush)
    {
        if (!CanFlushDenormals) return action();
        byte* saved = stackalloc byte[EnvBytes];
        if (GetEnv(saved) != 0) throw new InvalidOperationException("fegetenv failed: the floating-point environment cannot be saved");
        try
        {
            if (flush is bool on) SetFlushing(on);
            return action();
        }
        finally { SetEnv(saved); }
    }

    /// <summary>Switches flushing on or off for this thread, with no restore: only <see cref="Run{T}"/> (which restores)
    /// and tests that need a thread in a known state call it.</summary>
    internal static void SetFlushing(bool on)
    {
        if (!CanFlushDenormals) throw new PlatformNotSupportedException("the subnormal mode can be set on Linux x86-64 and AArch64 only");
        byte* env = stackalloc byte[EnvBytes];
        if (GetEnv(env) != 0) throw new InvalidOperationException("fegetenv failed: the floating-point environment cannot be read");
        bool x64 = RuntimeInformation.ProcessArchitecture == Architecture.X64;
        ref uint word = ref x64 ? ref *(uint*)(env + MxcsrOffset) : ref *(uint*)env;
        uint bits = x64 ? MxcsrFlushToZero | MxcsrDenormalsAreZero : FpcrFlushToZero;
        word = on ? word | bits : word & ~bits;
        if (SetEnv(env) != 0) throw new InvalidOperationException("fesetenv failed: the subnormal mode cannot be set");
    }

    /// <summary>A thread's saved floating-point environment, for scopes that span more than one delegate (the engine's
    /// passes and its worker threads' jobs): <see cref="Enter"/> saves and sets, <see cref="Leave"/> restores.</summary>
    internal struct Saved
    {
        internal fixed byte Env[EnvBytes];
        internal bool Valid;
    }

    /// <summary>Whether this thread's flush-to-zero bits are set now (read from the environment, not probed).</summary>
    internal static bool IsFlushing()
    {
        if (!CanFlushDenormals) return false;
        byte* env = stackalloc byte[EnvBytes];
        if (GetEnv(env) != 0) throw new InvalidOperationException("fegetenv failed: the floating-point environment cannot be read");
        return Flushes(env);
    }

    private static bool Flushes(byte* env) => RuntimeInformation.ProcessArchitecture == Architecture.X64
        ? (*(uint*)(env + MxcsrOffset) & (MxcsrFlushToZero | MxcsrDenormalsAreZero)) == (MxcsrFlushToZero | MxcsrDenormalsAreZero)
        : (*(uint*)env & FpcrFlushToZero) != 0;

    /// <summary>Saves this thread's environment into <paramref name="saved"/> and sets flushing on or off; a no-op
    /// where the mode cannot be set. Every Enter is paired with a <see cref="Leave"/> on the same thread.</summary>
    internal static void Enter(ref Saved saved, bool flush)
    {
        saved.Valid = false;
        if (!CanFlushDenormals) return;
        fixed (byte* env = saved.Env)
        {
            if (GetEnv(env) != 0) throw new InvalidOperationException("fegetenv failed: the floating-point environment cannot be saved");
            // Already in the wanted mode (the common case for a pass's worker chunks): nothing to set or restore.
            if (Flushes(env) == flush) return;
        }
        saved.Valid = true;
        SetFlushing(flush);
    }

    /// <summary>Puts back the environment <see cref="Enter"/> saved.</summary>
    internal static void Leave(ref Saved saved)
    {
        if (!saved.Valid) return;
        fixed (byte* env = saved.Env)
            if (SetEnv(env) != 0) throw new InvalidOperationException("fesetenv failed: the floating-point environment cannot be restored");
        saved.Valid = false;
    }

    /// <summary>Whether arithmetic on this thread flushes subnormals now (a probe: half of the smallest-but-one
    /// subnormal, computed at run time).</summary>
    internal static bool ThreadFlushesDenormals()
    {
        int[] bits = [2];
        return BitConverter.SingleToInt32Bits(Half(BitConverter.Int32BitsToSingle(bits[0]))) == 0;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static float Half(float v) => v * 0.5f;
}
