using Gate.Core.Model;
using Gate.Core.Policy;

namespace Gate.Core.Runtime;

/// <summary>
/// Opens the policy's production runtime for a model. Never throws for an unavailable runtime: it returns the
/// reason instead, so that the checks that need it become INCONCLUSIVE while the rest still run.
/// </summary>
public static class ProductionRuntime
{
    /// <summary>Set by the ONNX Runtime binding when it is compiled in; null while it is not.</summary>
    public static Func<IInferenceRuntime>? OnnxRuntimeFactory { get; set; }

    /// <summary>A model whose batch is fixed at 1 is queried one sample at a time (<see cref="FixedBatch"/>).</summary>
    private static IInferenceSession Batched(OnnxModel model, IInferenceSession s) => FixedBatch.IsFixedAtOne(model) ? FixedBatch.SampleBySample(s) : s;

    public static (IInferenceSession? Session, string? Reason) Open(DeploymentPolicy policy, OnnxModel model, RuntimeOptions options)
    {
        if (policy.Spec.Runtime == "builtin")
            // The built-in engine runs on the CPU only, so it cannot honour a required GPU.
            return options.RequireGpu ? (null, "gpu: required, but the builtin runtime runs on the CPU only") : (Batched(model, new BuiltinRuntime().Load(model, options)), null);
        if (OnnxRuntimeFactory is null)
            return (null, "ONNX Runtime is not available in this build of Gate");
        try
        {
            return (Batched(model, OnnxRuntimeFactory().Load(model, options)), null);
        }
        // Also how a required GPU that cannot be used arrives (the runtime throws rather than fall back to the CPU).
        catch (GateComponentMissingException e) { return (null, e.Message); }
    }
}
