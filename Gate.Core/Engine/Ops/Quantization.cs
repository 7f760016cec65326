using Gate.Core.Tensors;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Scale and zero point of QuantizeLinear/DequantizeLinear laid over x: per tensor (scalar or [1]), per axis (1-D
/// along <c>axis</c>) or blocked (same rank as x, <c>block_size</c> elements of x per entry along <c>axis</c>).
/// </summary>
internal readonly struct QuantParams
{
    private readonly Tensor scale;
    private readonly Tensor? zeroPoint;
    private readonly int axis, axisLen, inner, blockSize;
    private readonly int[] xShape, scaleStrides;
    private readonly bool perTensor, blocked;

    public QuantParams(OpContext ctx, Tensor x, Tensor scale, Tensor? zeroPoint)
    {
        this.scale = scale; this.zeroPoint = zeroPoint; xShape = x.Shape;
        if (zeroPoint is not null && !zeroPoint.Shape.SequenceEqual(scale.Shape))
            throw new OperatorException($"{ctx.Where}: zero point shape {zeroPoint.ShapeString} differs from scale shape {scale.ShapeString}");
        perTensor = scale.Length == 1 && scale.Rank <= 1;
        blockSize = (int)ctx.Node.GetInt("block_size", 0);
        int a = (int)ctx.Node.GetInt("axis", 1);
        if (a < 0) a += x.Rank;
        axis = a; axisLen = 1; inner = 1; scaleStrides = [];
        blocked = !perTensor && blockSize > 0;
        if (perTensor) return;
        if (a < 0 || a >= x.Rank) throw new OperatorException($"{ctx.Where}: axis {ctx.Node.GetInt("axis", 1)} is out of range for rank {x.Rank}");
        if (blocked)
        {
            if (scale.Rank != x.Rank) throw new OperatorException($"{ctx.Where}: blocked quantization needs a scale of rank {x.Rank}, got {scale.ShapeString}");
            for (int d = 0; d < x.Rank; d++)
            {
                int want = d == a ? (x.Shape[d] + blockSize - 1) / blockSize : x.Shape[d];
                if (scale.Shape[d] != want) throw new OperatorException($"{ctx.Where}: scale shape {scale.ShapeString} does not match x {x.ShapeString} with block_size {blockSize} on axis {a}");
            }
            scaleStrides = new int[x.Rank];
            int st = 1;
            for (int d = x.Rank - 1; d >= 0; d--) { scaleStrides[d] = st; st *= scale.Shape[d]; }
            return;
        }
        if (scale.Rank != 1 || scale.Length != x.Shape[a])
            throw new OperatorException($"{ctx.Where}: per-axis scale must be 1-D of length {x.Shape[a]} (x {x.ShapeString}, axis {a}), got {scale.ShapeString}");
        axisLen = x.Shape[a];
        for (int d = a + 1; d < x.Rank; d++) inner *= x.Shape[d];
    }

    /// <summary>Index into scale/zero point for element <paramref name="i"/> of x.</summary>
    public int IndexOf(int i)
    {
        if (perTensor) return 0;
        if (!blocked) return i / inner % axisLen;
        int idx = 0, rem = i;
        for (int d = xShape.Length - 1; d >= 0; d--)
        {
            int c = rem % xShape[d]; rem /= xShape[d];
            idx += (d == axis ? c / blockSize : c) * scaleStrides[d];
        }
        return idx;
    }

    public double Scale(int k) => scale.GetDouble(k);
    public double Zero(int k) => zeroPoint is null ? 0 : zeroPoint.GetDouble(k);
}

/// <summary>
/// QuantizeLinear: y = saturate(round_half_even(x / scale) + zero_point) into the zero point's type (or
/// <c>output_dtype</c>, default uint8): 2-, 4-, 8- and 16-bit integers, or a float8 type (round to nearest,
/// saturating unless <c>saturate</c>=0). Gradient: a straight-through estimator — rounding is treated as the
/// identity, so dy/dx = 1/scale inside the representable range and 0 where y saturates (the usual clipped STE of
/// quantization-aware training). Checks that differentiate through it say so in their evidence.
/// </summary>
public sealed class QuantizeLinearOp : Operator
{
    public override string OpType => "QuantizeLinear";

    /// <summary>What evidence says about gradients of a model that quantizes (null when it has no QuantizeLinear).</summary>
    public static string? StraightThroughNote(Model.OnnxModel model)
    {
        int n = model.Graph.Nodes.Count(x => x.OpType == "QuantizeLinear" && x.Domain is "" or "ai.onnx");
        return n == 0 ? null
            : $"gradients cross {n} QuantizeLinear node(s) by a straight-through estimator: rounding is treated as the identity " +
              "(d/dx = 1/scale inside the quantized range, 0 where it saturates), so gradient attacks see a smoothed model; " +
              "every counterexample is still confirmed on the real, quantized forward pass";
    }

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];

    /// <summary>Range of an integer quantized type; null for float8 targets.</summary>
    internal static (long Lo, long Hi)? IntegerRange(DType t) => t switch
    {
        DType.UInt8 => (0, 255), DType.Int8 => (-128, 127), DType.UInt16 => (0, 65535), DType.Int16 => (-32768, 32767),
        DType.UInt4 => (0, 15), DType.Int4 => (-8, 7), DType.UInt2 => (0, 3), DType.Int2 => (-2, 1),
        DType.Int32 => (int.MinValue, int.MaxValue),
        _ => null,
    };

    private static DType Target(OpContext ctx, Tensor? zeroPoint)
    {
        var declared = (DType)ctx.Node.GetInt("output_dtype", 0);
        if (zeroPoint is not null)
        {
            if (declared != DType.Undefined && declared != zeroPoint.Type)
                throw new OperatorException($"{ctx.Where}: output_dtype {declared.OnnxName()} differs from the zero point's type {zeroPoint.Type.OnnxName()}");
            return zeroPoint.Type;
        }
        return declared == DType.Undefined ? DType.UInt8 : declared;
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!; var scale = inputs[1]!; var zp = inputs.Length > 2 ? inputs[2] : null;
        if (!x.Type.IsFloating() && x.Type != DType.Int32) throw new OperatorException($"{ctx.Where}: QuantizeLinear input must be floating (or int32), got {x.Type.OnnxName()}");
        var to = Target(ctx, zp);
        var q = new QuantParams(ctx, x, scale, zp);
        int n = x.Length;
        if (IntegerRange(to) is { } range)
        {
            var y = new long[n];
            for (int i = 0; i < n; i++)
            {
                int k = q.IndexOf(i);
                double v = Math.Round(x.GetDouble(i) / q.Scale(k), MidpointRounding.ToEven) + q.Zero(k);
                y[i] = double.IsNaN(v) ? 0 : (long)Math.Clamp(v, range.Lo, range.Hi);
            }
            return [Tensor.FromLongs(x.Shape, y, to)];
        }
        if (to.Storage() == StorageKind.Float && to != DType.Float32)
        {
            var y = new float[n];
            for (int i = 0; i < n; i++) { int k = q.IndexOf(i); y[i] = (float)(x.GetDouble(i) / q.Scale(k) + q.Zero(k)); }
            return [Tensor.FromFloats(x.Shape, NarrowFloats.Round(y, to, ctx.Node.GetInt("saturate", 1) != 0), to)];
        }
        throw new OperatorException($"{ctx.Where}: QuantizeLinear cannot quantize to {to.OnnxName()}");
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!; var scale = inputs[1]!; var zp = inputs.Length > 2 ? inputs[2] : null;
        if (g[0] is null || !x.Type.IsFloating()) return new Tensor?[inputs.Length];
        var q = new QuantParams(ctx, x, scale, zp);
        var range = IntegerRange(outputs[0].Type);
        var dx = new float[x.Length];
        for (int i = 0; i < dx.Length; i++)
        {
            int k = q.IndexOf(i);
            double s = q.Scale(k), unclipped = x.GetDouble(i) / s + q.Zero(k);
            bool inside = range is not { } r || (unclipped >= r.Lo - 0.5 && unclipped <= r.Hi + 0.5);
            dx[i] = inside ? (float)(g[0]!.GetDouble(i) / s) : 0f;
        }
        var result = new Tensor?[inputs.Length];
        result[0] = Tensor.FromFloats(x.Shape, dx);
        return result;
    }
}

/// <summary>
/// DequantizeLinear: y = (x - zero_point) · scale, in the scale's type (or <c>output_dtype</c>). Its gradient with
/// respect to x is g · scale: exact for the affine map, and the other half of the straight-through estimator that
/// lets gradients cross a quantized tensor (see <see cref="QuantizeLinearOp"/>).
/// </summary>
public sealed class DequantizeLinearOp : Operator
{
    public override string OpType => "DequantizeLinear";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var x = inputs[0]!; var scale = inputs[1]!; var zp = inputs.Length > 2 ? inputs[2] : null;
        if (zp is not null && zp.Type != x.Type) throw new OperatorException($"{ctx.Where}: zero point type {zp.Type.OnnxName()} differs from x's {x.Type.OnnxName()}");
        if (!scale.Type.IsFloating()) throw new OperatorException($"{ctx.Where}: scale must be floating, got {scale.Type.OnnxName()}");
        var to = (DType)ctx.Node.GetInt("output_dtype", 0) is var d && d != DType.Undefined ? d : scale.Type;
        var q = new QuantParams(ctx, x, scale, zp);
        int n = x.Length;
        if (to == DType.Float64)
        {
            var y = new double[n];
            for (int i = 0; i < n; i++) { int k = q.IndexOf(i); y[i] = (x.GetDouble(i) - q.Zero(k)) * q.Scale(k); }
            return [Tensor.FromDoubles(x.Shape, y)];
        }
        if (to.Storage() != StorageKind.Float) throw new OperatorException($"{ctx.Where}: DequantizeLinear cannot produce {to.OnnxName()}");
        var f = new float[n];
        for (int i = 0; i < n; i++) { int k = q.IndexOf(i); f[i] = (float)((x.GetDouble(i) - q.Zero(k)) * (float)q.Scale(k)); }
        return [Tensor.FromFloats(x.Shape, NarrowFloats.Round(f, to), to)];
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!; var scale = inputs[1]!; var zp = inputs.Length > 2 ? inputs[2] : null;
        var result = new Tensor?[inputs.Length];
        if (g[0] is null) return result;
        var q = new QuantParams(ctx, x, scale, zp);
        var dx = new float[x.Length];
        for (int i = 0; i < dx.Length; i++) dx[i] = (float)(g[0]!.GetDouble(i) * q.Scale(q.IndexOf(i)));
        result[0] = Tensor.FromFloats(x.Shape, dx);
        return result;
    }
}
