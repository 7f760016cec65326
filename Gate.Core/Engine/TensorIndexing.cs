using Gate.Core.Tensors;

namespace Gate.Core.Engine;

/// <summary>
/// Storage-generic data movement. Operators that only move elements (Transpose, Slice, Gather, Tile, Expand, Pad,
/// Concat, Split) describe themselves as an index map "output element i reads input element idx[i]"; the forward
/// pass is <see cref="Take"/> and the gradient is the adjoint <see cref="ScatterAdd"/>, so each such operator
/// states its semantics once.
/// </summary>
public static class TensorIndexing
{
    public static int[] Strides(int[] shape)
    {
        var s = new int[shape.Length];
        int st = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { s[i] = st; st *= shape[i]; }
        return s;
    }

    /// <summary>Normalizes a possibly negative axis; <paramref name="rank"/> is the number of valid positions.</summary>
    public static int Axis(long axis, int rank, OpContext ctx, string what = "axis")
    {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw new OperatorException($"{ctx.Where}: {what} {axis} is out of range for rank {rank}");
        return (int)a;
    }

    /// <summary>Output element i = src[idx[i]]; idx[i] &lt; 0 means "use <paramref name="fill"/>" (constant padding).</summary>
    public static Tensor Take(Tensor src, int[] idx, int[] shape, Tensor? fill = null)
    {
        int n = idx.Length;
        switch (src.Type.Storage())
        {
            case StorageKind.Float:
            {
                var y = new float[n]; var x = src.Floats!; float f = fill is null ? 0f : (float)fill.GetDouble(0);
                for (int i = 0; i < n; i++) y[i] = idx[i] >= 0 ? x[idx[i]] : f;
                return Tensor.FromFloats(shape, y, src.Type);
            }
            case StorageKind.Double:
            {
                var y = new double[n]; var x = src.Doubles!; double f = fill?.GetDouble(0) ?? 0;
                for (int i = 0; i < n; i++) y[i] = idx[i] >= 0 ? x[idx[i]] : f;
                return Tensor.FromDoubles(shape, y);
            }
            case StorageKind.Long:
            {
                var y = new long[n]; var x = src.Longs!; long f = fill?.Longs?[0] ?? 0;
                for (int i = 0; i < n; i++) y[i] = idx[i] >= 0 ? x[idx[i]] : f;
                return Tensor.FromLongs(shape, y, src.Type);
            }
            default:
            {
                var y = new string[n]; var x = src.Strings!; string f = fill?.Strings?[0] ?? "";
                for (int i = 0; i < n; i++) y[i] = idx[i] >= 0 ? x[idx[i]] : f;
                return Tensor.FromStrings(shape, y);
            }
        }
    }

    /// <summary>Adjoint of <see cref="Take"/>: accumulates each output gradient into the input element it read.</summary>
    public static Tensor ScatterAdd(Tensor grad, int[] idx, int[] srcShape)
    {
        int n = Tensor.ElementCount(srcShape);
        if (grad.Doubles is not null)
        {
            var r = new double[n]; var g = grad.Doubles;
            for (int i = 0; i < idx.Length; i++) if (idx[i] >= 0) r[idx[i]] += g[i];
            return Tensor.FromDoubles(srcShape, r);
        }
        var f = new float[n]; var gf = grad.Floats!;
        for (int i = 0; i < idx.Length; i++) if (idx[i] >= 0) f[idx[i]] += gf[i];
        return Tensor.FromFloats(srcShape, f);
    }

    /// <summary>Index map of a strided view: out[i] reads src at offset + Σ counter[ax]·steps[ax].</summary>
    public static int[] StridedIndex(int[] outShape, int offset, int[] steps)
    {
        int n = Tensor.ElementCount(outShape), r = outShape.Length;
        var idx = new int[n];
        if (n == 0) return idx;
        var counter = new int[r];
        int cur = offset;
        for (int e = 0; e < n; e++)
        {
            idx[e] = cur;
            for (int ax = r - 1; ax >= 0; ax--)
            {
                counter[ax]++;
                cur += steps[ax];
                if (counter[ax] < outShape[ax]) break;
                cur -= steps[ax] * counter[ax];
                counter[ax] = 0;
            }
        }
        return idx;
    }

    /// <summary>A tensor of the same type as <paramref name="like"/> from double values (for scalar-producing ops).</summary>
    public static Tensor FromDoublesAs(DType type, int[] shape, double[] v)
    {
        switch (type.Storage())
        {
            case StorageKind.Float: return Tensor.FromFloats(shape, NarrowFloats.Round(v.Select(d => (float)d).ToArray(), type), type);
            case StorageKind.Double: return Tensor.FromDoubles(shape, v);
            case StorageKind.Long: return Tensor.FromLongs(shape, v.Select(d => Ops.IntegerWrap.Wrap((long)d, type)).ToArray(), type);
            default: throw new NotSupportedException($"cannot make a {type} tensor from numbers");
        }
    }

    /// <summary>Input values as doubles, whatever the storage (for kernels on rarely used types).</summary>
    public static double[] AsDoubles(Tensor t) => t.Doubles is not null ? t.Doubles : t.ToDoubleArray();

    /// <summary>The elements of several same-typed tensors laid end to end, as one flat tensor.</summary>
    public static Tensor ConcatFlat(IReadOnlyList<Tensor> ts)
    {
        int n = ts.Sum(t => t.Length), p = 0;
        var type = ts[0].Type;
        switch (type.Storage())
        {
            case StorageKind.Float: { var a = new float[n]; foreach (var t in ts) { t.Floats.AsSpan(0, t.Length).CopyTo(a.AsSpan(p)); p += t.Length; } return Tensor.FromFloats([n], a, type); }
            case StorageKind.Double: { var a = new double[n]; foreach (var t in ts) { t.Doubles.AsSpan(0, t.Length).CopyTo(a.AsSpan(p)); p += t.Length; } return Tensor.FromDoubles([n], a); }
            case StorageKind.Long: { var a = new long[n]; foreach (var t in ts) { t.Longs.AsSpan(0, t.Length).CopyTo(a.AsSpan(p)); p += t.Length; } return Tensor.FromLongs([n], a, type); }
            default: { var a = new string[n]; foreach (var t in ts) { t.Strings.AsSpan(0, t.Length).CopyTo(a.AsSpan(p)); p += t.Length; } return Tensor.FromStrings([n], a); }
        }
    }

    /// <summary>Element reader without copying float32/float64 storage.</summary>
    public static Func<int, double> AsDoublesOrFloats(Tensor t) =>
        t.Floats is { } f ? i => f[i] : t.Doubles is { } d ? i => d[i] : t.GetDouble;

    /// <summary>Reads an optional int64 input tensor (axes, pads, ...) as a long array.</summary>
    public static long[]? LongsOf(Tensor?[] inputs, int i) => inputs.Length > i && inputs[i] is { } t ? t.ToLongArray() : null;
}
