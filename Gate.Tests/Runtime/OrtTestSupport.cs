using Gate.Core.Runtime.OnnxRuntime;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>Shared helper for the ONNX Runtime tests: the availability guard.</summary>
internal static class OrtTestSupport
{
    /// <summary>Skips (locally) or fails (CI, GATE_REQUIRE_ORT=1) when the ORT library cannot be loaded.</summary>
    public static void RequireOrt()
    {
        bool ok = OrtLibrary.TryLoad(out var reason);
        Need.Component("GATE_REQUIRE_ORT", ok, reason ?? "");
    }
}
