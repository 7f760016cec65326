using Gate.Core;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Tests.Support;
using Microsoft.ML.OnnxRuntime;

namespace Gate.Tests.Runtime;

/// <summary>
/// The evidence behind the ONNX Runtime exclusions of <see cref="Engine.GateRunConformanceTests"/>: a one-node model of
/// each kernel the conformance cases need, opened with ONNX Runtime 1.31.1 itself, is refused with "Could not find an
/// implementation". The official managed API opens the int16/uint16/uint32 cases; it cannot describe a float4 output at
/// all, so that one goes through the C API (<see cref="OrtSession"/>). When a later ORT adds a kernel, its case here
/// fails, and the conformance target should rise.
/// </summary>
public class OrtMissingKernelTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases => ["Max int16", "Min uint16", "Pow uint32 exponent", "Pow uint64 exponent", "Cast float to float4e2m1"];

    private static (byte[] Model, string Op) Build(string which)
    {
        OnnxBuilder b;
        switch (which)
        {
            case "Max int16" or "Min uint16":
                var t = which.StartsWith("Max") ? DType.Int16 : DType.UInt16;
                b = new OnnxBuilder(opset: 13).Input("a", t, 2).Input("b", t, 2).Output("y", t, 2);
                b.Node(which[..3], ["a", "b"], ["y"]);
                return (b.Bytes(), which[..3]);
            case "Pow uint32 exponent" or "Pow uint64 exponent":
                b = new OnnxBuilder(opset: 15).Input("x", 2).Input("e", which.Contains("32") ? DType.UInt32 : DType.UInt64, 2).Output("y", 2);
                b.Node("Pow", ["x", "e"], ["y"]);
                return (b.Bytes(), "Pow");
            default:
                b = new OnnxBuilder(opset: 23, irVersion: 11).Input("x", 2).Output("y", DType.Float4E2M1, 2);
                b.Node("Cast", ["x"], ["y"], null, OnnxBuilder.Int("to", (int)DType.Float4E2M1));
                return (b.Bytes(), "Cast");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Onnxruntime_1_31_has_no_cpu_kernel_for(string which)
    {
        OrtTestSupport.RequireOrt();
        var (model, op) = Build(which);
        string message;
        if (which.StartsWith("Cast", StringComparison.Ordinal))
            message = Assert.Throws<GateInputException>(() => OrtSession.Create(model, which, new OrtSessionSettings(IntraOpThreads: 1))).Message;
        else
            message = Assert.Throws<OnnxRuntimeException>(() => new InferenceSession(model).Dispose()).Message;
        output.WriteLine($"{which}: ONNX Runtime {OrtLibrary.Version}: {message}");
        // ORT words a missing kernel two ways: no kernel of the op's version at all, or one whose types exclude this one.
        Assert.Matches($"(Could not find an implementation for|Failed to find kernel for) {op}\\(", message);
    }
}
