namespace Gate.Core.Engine;

/// <summary>The policy's GPU request (sandbox.gpu, or gate check --gpu) as the white-box engines see it.</summary>
/// <param name="Use">A GPU was asked for (optional or required).</param>
/// <param name="Require">gpu: required: no CPU fallback.</param>
public sealed record GpuRequest(bool Use = false, bool Require = false)
{
    public static readonly GpuRequest None = new();
}

/// <summary>
/// Where the torch engine computes. The built-in engine is CPU only; the torch engine runs on CUDA when a GPU was
/// asked for and libtorch reports one in the sandbox (the GPU flavour, built with <c>-p:GateTorchCuda=true</c>,
/// ships libtorch's CUDA build; docs/gpu.md). Asked for and absent: <c>optional</c> computes on the CPU and records
/// why, <c>required</c> refuses, so the white-box checks are INCONCLUSIVE rather than silently run elsewhere.
/// </summary>
public static class TorchDevice
{
    public const string Cpu = "cpu";
    public const string Cuda = "cuda:0";

    /// <param name="cudaDevices">CUDA devices libtorch reports (0 for a CPU-only libtorch).</param>
    /// <param name="whyNoCuda">libtorch's reason when it reports none, if it gave one.</param>
    /// <returns>The device and, when a GPU was asked for but the CPU is used, why.</returns>
    /// <exception cref="GateComponentMissingException">gpu: required and no CUDA device.</exception>
    public static (string Device, string? Fallback) Choose(GpuRequest gpu, int cudaDevices, string? whyNoCuda = null)
    {
        if (!gpu.Use) return (Cpu, null);
        if (cudaDevices > 0) return (Cuda, null);
        var why = $"the torch engine sees no CUDA device ({whyNoCuda ?? "this runner's libtorch is the CPU build: build the GPU flavour with -p:GateTorchCuda=true"})";
        if (gpu.Require) throw new GateComponentMissingException($"gpu: required, but {why}");
        return (Cpu, why);
    }
}
