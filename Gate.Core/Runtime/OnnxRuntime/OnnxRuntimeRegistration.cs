using System.Runtime.CompilerServices;

namespace Gate.Core.Runtime.OnnxRuntime;

internal static class OnnxRuntimeRegistration
{
    /// <summary>
    /// Makes ONNX Runtime the production runtime as soon as Gate.Core loads. Only a factory is installed: the native
    /// library is loaded when a model is first loaded, so a machine without ORT still runs everything else.
    /// </summary>
#pragma warning disable CA2255 // Deliberate: Gate.Core is the application's core, and ProductionRuntime must see ORT without callers wiring it up.
    [ModuleInitializer]
    internal static void Register() => ProductionRuntime.OnnxRuntimeFactory ??= () => new OnnxRuntimeInference();
#pragma warning restore CA2255
}
