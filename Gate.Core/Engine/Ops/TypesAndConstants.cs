using Gate.Core.Tensors;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Cast to the "to" type. Floats to integers truncate toward zero and wrap (as C casts in ONNX Runtime); the 4- and
/// 2-bit integers round half to even and wrap (as the ONNX reference data do: -9 becomes int4 7); narrow floats round to nearest even, saturating
/// unless saturate=0. Gradients flow only between floating types.
/// </summary>
public sealed class CastOp : Operator
{
    public override string OpType => "Cast";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs) =>
        [Convert(inputs[0]!, (DType)ctx.Node.GetInt("to", 0), ctx.Node.GetBool("saturate", true), ctx.Node.GetString("round_mode", "up"), ctx)];

    public static Tensor Convert(Tensor x, DType to, bool saturate, string roundMode, OpContext ctx)
    {
        if (x.Type == to) return x;
        int n = x.Length;
        if (to == DType.String)
            return Tensor.FromStrings(x.Shape, Enumerable.Range(0, n).Select(i => x.Type.Storage() == StorageKind.Long ? x.Longs![i].ToString(System.Globalization.CultureInfo.InvariantCulture) : x.GetDouble(i).ToString("R", System.Globalization.CultureInfo.InvariantCulture)).ToArray());
        double[] v = x.Type == DType.String
            ? x.Strings!.Take(n).Select(s => double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) ? d : throw new OperatorException($"{ctx.Where}: cannot cast string '{s}' to {to.OnnxName()}")).ToArray()
            : null!;
        double Get(int i) => v is not null ? v[i] : x.GetDouble(i);
        switch (to.Storage())
        {
            case StorageKind.Float:
            {
                var f = new float[n];
                for (int i = 0; i < n; i++) f[i] = x.Floats is not null ? x.Floats[i] : (float)Get(i);
                return Tensor.FromFloats(x.Shape, NarrowFloats.Round(f, to, saturate, roundMode), to);
            }
            case StorageKind.Double:
            {
                var d = new double[n];
                for (int i = 0; i < n; i++) d[i] = Get(i);
                return Tensor.FromDoubles(x.Shape, d);
            }
            case StorageKind.Long:
            {
                var l = new long[n];
                bool fromInt = x.Type.Storage() == StorageKind.Long;
                for (int i = 0; i < n; i++)
                {
                    if (fromInt) { l[i] = NarrowInt(x.Longs![i], to, wrap: true); continue; }
                    double d = Get(i);
                    if (to == DType.Bool) { l[i] = d != 0 ? 1 : 0; continue; }
                    if (to is DType.Int4 or DType.UInt4 or DType.Int2 or DType.UInt2) { l[i] = NarrowInt((long)Math.Round(d, MidpointRounding.ToEven), to, wrap: true); continue; }
                    if (double.IsNaN(d)) { l[i] = 0; continue; }
                    l[i] = to == DType.UInt64 && d >= 9.2233720368547758E18 ? (long)(ulong)d : IntegerWrap.Wrap((long)d, to);
                }
                return Tensor.FromLongs(x.Shape, l, to);
            }
            default: throw new OperatorException($"{ctx.Where}: cannot cast to {to.OnnxName()}");
        }
    }

    /// <summary>Integer to integer: two's-complement wrap (or saturation when <paramref name="wrap"/> is false).</summary>
    private static long NarrowInt(long v, DType to, bool wrap)
    {
        (long lo, long hi, int bits) = to switch
        {
            DType.Int4 => (-8L, 7L, 4), DType.UInt4 => (0L, 15L, 4), DType.Int2 => (-2L, 1L, 2), DType.UInt2 => (0L, 3L, 2),
            _ => (0L, 0L, 0),
        };
        if (bits == 0) return to == DType.Bool ? (v != 0 ? 1 : 0) : IntegerWrap.Wrap(v, to);
        if (!wrap) return Math.Clamp(v, lo, hi);
        long m = v & ((1L << bits) - 1);
        return lo < 0 && m > hi ? m - (1L << bits) : m;
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!;
        if (!x.Type.IsFloating() || !outputs[0].Type.IsFloating() || g[0] is null) return [null];
        return [Convert(g[0]!, x.Type == DType.Float64 ? DType.Float64 : DType.Float32, true, "up", ctx)];
    }
}

/// <summary>CastLike: Cast to the element type of the second input.</summary>
public sealed class CastLikeOp : Operator
{
    public override string OpType => "CastLike";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0]];
    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs) =>
        [CastOp.Convert(inputs[0]!, inputs[1]!.Type, ctx.Node.GetBool("saturate", true), ctx.Node.GetString("round_mode", "up"), ctx)];
    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var x = inputs[0]!;
        if (!x.Type.IsFloating() || !outputs[0].Type.IsFloating() || g[0] is null) return [null, null];
        return [CastOp.Convert(g[0]!, x.Type == DType.Float64 ? DType.Float64 : DType.Float32, true, "up", ctx), null];
    }
}

/// <summary>Shape (with opset-15 start/end, clamped) as int64.</summary>
public sealed class ShapeOp : Operator
{
    public override string OpType => "Shape";
    public override bool IsDifferentiable => false;
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0] is null ? null : [Range(ctx, s[0]!.Length).Count]];

    private static (int Start, int Count) Range(OpContext ctx, int r)
    {
        long start = ctx.Node.GetInt("start", 0), end = ctx.Node.GetInt("end", r);
        if (start < 0) start += r;
        if (end < 0) end += r;
        start = Math.Clamp(start, 0, r); end = Math.Clamp(end, 0, r);
        return ((int)start, (int)Math.Max(0, end - start));
    }
    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var s = inputs[0]!.Shape;
        var (start, count) = Range(ctx, s.Length);
        var v = s.Skip(start).Take(count).Select(d => (long)d).ToArray();
        return [Tensor.FromLongs([v.Length], v)];
    }
}

public sealed class SizeOp : Operator
{
    public override string OpType => "Size";
    public override bool IsDifferentiable => false;
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [[]];
    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs) => [Tensor.ScalarLong(inputs[0]!.Length)];
}

/// <summary>Constant: exactly one of value, value_float(s), value_int(s), value_string(s).</summary>
public sealed class ConstantOp : Operator
{
    public override string OpType => "Constant";
    public override bool IsDifferentiable => false;
    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var n = ctx.Node;
        if (n.Attr("value") is { T: { } t }) return [t];
        if (n.Attr("value_float") is { } f) return [Tensor.Scalar(f.F)];
        if (n.Attr("value_floats") is { } fs) return [Tensor.FromFloats([fs.Floats.Length], fs.Floats.ToArray())];
        if (n.Attr("value_int") is { } i) return [Tensor.ScalarLong(i.I)];
        if (n.Attr("value_ints") is { } ii) return [Tensor.FromLongs([ii.Ints.Length], ii.Ints.ToArray())];
        if (n.Attr("value_string") is { } s) return [Tensor.FromStrings([], [s.S])];
        if (n.Attr("value_strings") is { } ss) return [Tensor.FromStrings([ss.Strings.Length], ss.Strings.ToArray())];
        throw new OperatorException($"{ctx.Where}: Constant has no supported value attribute (sparse values are not supported)");
    }
}

/// <summary>ConstantOfShape: a tensor of the given shape filled with the one-element "value" (default float 0).</summary>
public sealed class ConstantOfShapeOp : Operator
{
    public override string OpType => "ConstantOfShape";
    public override bool IsDifferentiable => false;
    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var shape = inputs[0]!.ToLongArray().Select(d => d < 0 ? throw new OperatorException($"{ctx.Where}: negative dimension {d}") : (int)d).ToArray();
        var value = ctx.Node.Attr("value")?.T ?? Tensor.Scalar(0f);
        if (value.Length != 1) throw new OperatorException($"{ctx.Where}: value must have exactly one element");
        return [TensorIndexing.Take(value, new int[Tensor.ElementCount(shape)], shape)];
    }
}

/// <summary>
/// Range(start, limit, delta): max(ceil((limit - start) / delta), 0) elements start + i·delta, in the inputs' type
/// (torch exports it for positional indices). Its output does not depend on any tensor's values in a differentiable
/// way, so it has no gradient.
/// </summary>
public sealed class RangeOp : Operator
{
    public override string OpType => "Range";
    public override bool IsDifferentiable => false;

    /// <summary>Elements one Range may produce: a guard against a model that asks for 10^12 elements.</summary>
    public const long MaxElements = 1L << 28;

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var (start, limit, delta) = (inputs[0]!, inputs[1]!, inputs[2]!);
        if (start.Length != 1 || limit.Length != 1 || delta.Length != 1)
            throw new OperatorException($"{ctx.Where}: Range takes scalars, got {start.ShapeString}, {limit.ShapeString}, {delta.ShapeString}");
        if (start.Type != limit.Type || start.Type != delta.Type)
            throw new OperatorException($"{ctx.Where}: Range inputs must share one type, got {start.Type.OnnxName()}, {limit.Type.OnnxName()}, {delta.Type.OnnxName()}");
        double s = start.GetDouble(0), l = limit.GetDouble(0), d = delta.GetDouble(0);
        if (d == 0 || double.IsNaN(d)) throw new OperatorException($"{ctx.Where}: Range delta must be non-zero");
        double count = Math.Max(Math.Ceiling((l - s) / d), 0);
        if (!(count <= MaxElements)) throw new OperatorException($"{ctx.Where}: Range would produce {count} elements (limit {MaxElements})");
        int n = (int)count;
        var t = start.Type;
        switch (t.Storage())
        {
            case StorageKind.Long:
            {
                long a = start.Longs![0], b = delta.Longs![0];
                var y = new long[n];
                for (int i = 0; i < n; i++) y[i] = IntegerWrap.Wrap(a + i * b, t);
                return [Tensor.FromLongs([n], y, t)];
            }
            case StorageKind.Double:
            {
                var y = new double[n];
                for (int i = 0; i < n; i++) y[i] = s + i * d;
                return [Tensor.FromDoubles([n], y)];
            }
            case StorageKind.Float:
            {
                // As the ONNX reference: accumulate in the element type.
                var y = new float[n];
                float v = (float)s, step = (float)d;
                for (int i = 0; i < n; i++) { y[i] = v; v += step; }
                return [Tensor.FromFloats([n], NarrowFloats.Round(y, t), t)];
            }
            default: throw new OperatorException($"{ctx.Where}: Range does not take {t.OnnxName()}");
        }
    }
}
