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

    public static (IInferenceSession? Session, string? Reason) Open(DeploymentPolicy policy, OnnxModel model, RuntimeOptions options)
    {
        if (policy.Spec.Runtime == "builtin")
            return (new BuiltinRuntime().Load(model, options), null);
        if (OnnxRuntimeFactory is null)
            return (null, "ONNX Runtime is not available in this build of Gate");
        try
        {
            return (OnnxRuntimeFactory().Load(model, options), null);
        }
        catch (GateComponentMissingException e) { return (null, e.Message); }
    }
}
