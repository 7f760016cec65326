using Gate.Core.Tensors;

namespace Gate.Tests.Runtime;

/// <summary>Element-wise comparison of two runtimes' outputs; a failure names the case, the tensor and the worst element.</summary>
internal static class OrtCompare
{
    public sealed record Tolerance(double Atol, double Rtol);

    /// <summary>float32 between two correct implementations: summation order and fused kernels differ, nothing else.</summary>
    public static readonly Tolerance Float32 = new(1e-5, 1e-4);
    /// <summary>float16/bfloat16 results: one unit in the last place of a 10-bit (or 7-bit) mantissa.</summary>
    public static readonly Tolerance Narrow = new(1e-3, 1e-2);
    public static readonly Tolerance Float64 = new(1e-12, 1e-10);
    /// <summary>The ONNX backend runner's default for expected outputs (rtol 1e-3, atol 1e-7).</summary>
    public static readonly Tolerance OnnxReference = new(1e-7, 1e-3);

    public static Tolerance For(DType t) => t switch
    {
        DType.Float64 => Float64,
        DType.Float16 or DType.BFloat16 => Narrow,
        _ => Float32,
    };

    /// <summary>Null when the tensors agree, else a message naming the case, the tensor and the worst element.</summary>
    public static string? Difference(string caseName, string tensor, Tensor expected, Tensor actual, Tolerance tol,
        string expectedLabel = "expected", string actualLabel = "actual")
    {
        if (expected.Type != actual.Type)
            return $"{caseName}: tensor '{tensor}': {actualLabel} type {actual.Type.OnnxName()}, {expectedLabel} type {expected.Type.OnnxName()}";
        if (!expected.Shape.SequenceEqual(actual.Shape))
            return $"{caseName}: tensor '{tensor}': {actualLabel} shape {actual.ShapeString}, {expectedLabel} shape {expected.ShapeString}";
        bool exact = !expected.Type.IsFloating();
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected.GetDouble(i), a = actual.GetDouble(i);
            if (double.IsNaN(e) && double.IsNaN(a)) continue;
            if (e == a) continue; // also equal infinities
            double allowed = exact ? 0 : tol.Atol + tol.Rtol * Math.Abs(e);
            double err = Math.Abs(e - a);
            double excess = double.IsNaN(err) ? double.PositiveInfinity : err - allowed;
            if (excess > 0 && (worst < 0 || excess > worstExcess)) { worst = i; worstExcess = excess; }
        }
        if (worst < 0) return null;
        return $"{caseName}: tensor '{tensor}' {expected.Type.OnnxName()}{expected.ShapeString}: worst element [{string.Join(",", Unravel(worst, expected.Shape))}] " +
               $"(flat {worst}): {actualLabel} {actual.GetDouble(worst):R} vs {expectedLabel} {expected.GetDouble(worst):R} " +
               $"(|Δ| = {Math.Abs(actual.GetDouble(worst) - expected.GetDouble(worst)):G4}, tolerance atol {tol.Atol:G3} + rtol {tol.Rtol:G3}·|{expectedLabel}|)";
    }

    public static void AssertClose(string caseName, string tensor, Tensor builtin, Tensor onnxruntime, Tolerance tol)
    {
        var d = Difference(caseName, tensor, builtin, onnxruntime, tol, "builtin", "onnxruntime");
        if (d is not null) Assert.Fail(d);
    }

    private static int[] Unravel(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        for (int k = shape.Length - 1; k >= 0; k--)
        {
            idx[k] = shape[k] == 0 ? 0 : flat % shape[k];
            flat = shape[k] == 0 ? 0 : flat / shape[k];
        }
        return idx;
    }
}
