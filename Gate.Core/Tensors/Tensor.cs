namespace Gate.Core.Tensors;

/// <summary>
/// A dense, C-ordered tensor. Exactly one of <see cref="Floats"/>, <see cref="Doubles"/>, <see cref="Longs"/>,
/// <see cref="Strings"/> is non-null, chosen by <see cref="DTypeInfo.Storage"/>. Tensors are treated as immutable
/// once handed to the engine: kernels allocate new outputs and never write into their inputs.
/// </summary>
public sealed class Tensor
{
    public DType Type { get; }
    public int[] Shape { get; }
    public int Length { get; }
    public float[]? Floats { get; }
    public double[]? Doubles { get; }
    public long[]? Longs { get; }
    public string[]? Strings { get; }

    private Tensor(DType type, int[] shape, float[]? f, double[]? d, long[]? l, string[]? s)
    {
        Type = type;
        Shape = shape;
        Length = ElementCount(shape);
        Floats = f; Doubles = d; Longs = l; Strings = s;
        int actual = f?.Length ?? d?.Length ?? l?.Length ?? s?.Length ?? -1;
        if (actual < Length)
            throw new ArgumentException($"tensor data has {actual} elements but shape [{string.Join(",", shape)}] needs {Length}");
    }

    public int Rank => Shape.Length;

    public static int ElementCount(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension {d}");
            n *= d;
            if (n > int.MaxValue) throw new ArgumentException("tensor has more than 2^31 elements");
        }
        return (int)n;
    }

    public static Tensor FromFloats(int[] shape, float[] data, DType type = DType.Float32)
    {
        if (type.Storage() != StorageKind.Float) throw new ArgumentException($"{type} is not held as float");
        return new(type, shape, data, null, null, null);
    }
    public static Tensor FromDoubles(int[] shape, double[] data) => new(DType.Float64, shape, null, data, null, null);
    public static Tensor FromLongs(int[] shape, long[] data, DType type = DType.Int64)
    {
        if (type.Storage() != StorageKind.Long) throw new ArgumentException($"{type} is not held as int64");
        return new(type, shape, null, null, data, null);
    }
    public static Tensor FromStrings(int[] shape, string[] data) => new(DType.String, shape, null, null, null, data);

    /// <summary>A zero-filled tensor of the given type.</summary>
    public static Tensor Zeros(DType type, int[] shape)
    {
        int n = ElementCount(shape);
        return type.Storage() switch
        {
            StorageKind.Float => FromFloats(shape, new float[n], type),
            StorageKind.Double => FromDoubles(shape, new double[n]),
            StorageKind.Long => FromLongs(shape, new long[n], type),
            _ => FromStrings(shape, Enumerable.Repeat("", n).ToArray()),
        };
    }

    public static Tensor Scalar(float v) => FromFloats([], [v]);
    public static Tensor ScalarLong(long v) => FromLongs([], [v]);

    /// <summary>Same data, new shape (no copy). The element count must match.</summary>
    public Tensor Reshape(int[] shape)
    {
        if (ElementCount(shape) != Length) throw new ArgumentException($"cannot reshape [{string.Join(",", Shape)}] to [{string.Join(",", shape)}]");
        return new(Type, shape, Floats, Doubles, Longs, Strings);
    }

    /// <summary>Element i as double, whatever the storage (for metrics and tests, not for kernels).</summary>
    public double GetDouble(int i) => Type.Storage() switch
    {
        StorageKind.Float => Floats![i],
        StorageKind.Double => Doubles![i],
        StorageKind.Long => Type == DType.UInt64 ? (double)(ulong)Longs![i] : Longs![i],
        _ => throw new InvalidOperationException("string tensor has no numeric value"),
    };

    /// <summary>A float32 copy of a numeric tensor.</summary>
    public float[] ToFloatArray()
    {
        if (Floats is not null) return Floats.AsSpan(0, Length).ToArray();
        var r = new float[Length];
        for (int i = 0; i < Length; i++) r[i] = (float)GetDouble(i);
        return r;
    }

    public double[] ToDoubleArray()
    {
        var r = new double[Length];
        for (int i = 0; i < Length; i++) r[i] = GetDouble(i);
        return r;
    }

    public long[] ToLongArray()
    {
        if (Longs is not null) return Longs.AsSpan(0, Length).ToArray();
        var r = new long[Length];
        for (int i = 0; i < Length; i++) r[i] = (long)GetDouble(i);
        return r;
    }

    /// <summary>Rows [start, start+count) along axis 0, copied.</summary>
    public Tensor SliceBatch(int start, int count)
    {
        if (Rank == 0) throw new InvalidOperationException("cannot slice a scalar");
        int row = Shape[0] == 0 ? 0 : Length / Shape[0];
        var shape = (int[])Shape.Clone();
        shape[0] = count;
        return Type.Storage() switch
        {
            StorageKind.Float => FromFloats(shape, Floats.AsSpan(start * row, count * row).ToArray(), Type),
            StorageKind.Double => FromDoubles(shape, Doubles.AsSpan(start * row, count * row).ToArray()),
            StorageKind.Long => FromLongs(shape, Longs.AsSpan(start * row, count * row).ToArray(), Type),
            _ => FromStrings(shape, Strings.AsSpan(start * row, count * row).ToArray()),
        };
    }

    public string ShapeString => "[" + string.Join(",", Shape) + "]";
    public override string ToString() => $"{Type.OnnxName()}{ShapeString}";
}
