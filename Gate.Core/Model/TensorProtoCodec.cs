using System.Buffers.Binary;
using System.Text;
using Gate.Core.Model.Proto;
using Gate.Core.Tensors;

namespace Gate.Core.Model;

/// <summary>Converts ONNX TensorProto messages to and from <see cref="Tensor"/>.</summary>
public static class TensorProtoCodec
{
    /// <summary>Parses a serialized TensorProto (e.g. a conformance case's input_0.pb).</summary>
    public static Tensor ParseSerialized(byte[] bytes, string name, ModelLimits? limits = null)
    {
        TensorProto tp;
        try { tp = TensorProto.Parser.ParseFrom(bytes); }
        catch (Google.Protobuf.InvalidProtocolBufferException e) { throw new GateInputException($"{name}: not a valid TensorProto: {e.Message}"); }
        return ToTensor(tp, name, limits ?? ModelLimits.Default, externalLoader: null);
    }

    /// <summary>
    /// A conformance case's serialized value as the graph declares it (<paramref name="type"/>; null: a tensor): a
    /// TensorProto, a SequenceProto of tensors, or an OptionalProto (of a tensor or such a sequence, or none).
    /// </summary>
    public static ModelValue ParseSerializedValue(byte[] bytes, string name, OnnxType? type)
    {
        if (type is null || type.Kind == "tensor") return ModelValue.Of(ParseSerialized(bytes, name));
        try
        {
            switch (type.Kind)
            {
                case "sequence": return ModelValue.Of(Sequence(SequenceProto.Parser.ParseFrom(bytes), name));
                case "optional":
                    var o = OptionalProto.Parser.ParseFrom(bytes);
                    return o.ElemType switch
                    {
                        0 => ModelValue.None,
                        1 => ModelValue.Of(ToTensor(o.TensorValue ?? new TensorProto(), name, ModelLimits.Default, null)),
                        3 => ModelValue.Of(Sequence(o.SequenceValue ?? new SequenceProto(), name)),
                        var k => throw new GateInputException($"{name}: an OptionalProto of element kind {k}; Gate reads optional tensors and sequences of tensors"),
                    };
                default: throw new GateInputException($"{name}: a {type} value; Gate reads tensors, sequences of tensors and optionals");
            }
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e) { throw new GateInputException($"{name}: not a valid {type.Kind} value: {e.Message}"); }
    }

    private static List<Tensor> Sequence(SequenceProto s, string name)
    {
        if (s.ElemType is not (0 or 1)) throw new GateInputException($"{name}: a SequenceProto of element kind {s.ElemType}; Gate reads sequences of tensors");
        return s.TensorValues.Select((t, i) => ToTensor(t, $"{name}[{i}]", ModelLimits.Default, null)).ToList();
    }

    internal static Tensor ToTensor(TensorProto tp, string where, ModelLimits limits, Func<TensorProto, byte[]>? externalLoader)
    {
        var type = (DType)tp.DataType;
        if (tp.Dims.Count > limits.MaxRank) throw new GateInputException($"{where}: tensor '{tp.Name}' has rank {tp.Dims.Count} (limit {limits.MaxRank})");
        var shape = new int[tp.Dims.Count];
        long count = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            long d = tp.Dims[i];
            if (d < 0 || d > limits.MaxDim) throw new GateInputException($"{where}: tensor '{tp.Name}' has dimension {d} at axis {i} (allowed 0..{limits.MaxDim})");
            count *= d;
            if (count > limits.MaxTensorElements) throw new GateInputException($"{where}: tensor '{tp.Name}' has more than {limits.MaxTensorElements} elements");
            shape[i] = (int)d;
        }
        int n = (int)count;
        byte[]? raw = null;
        if (tp.DataLocation == 1)
        {
            if (externalLoader is null) throw new GateInputException($"{where}: tensor '{tp.Name}' uses external data, which is not allowed here");
            raw = externalLoader(tp);
        }
        else if (!tp.RawData.IsEmpty) raw = tp.RawData.ToByteArray();

        try
        {
            switch (type)
            {
                case DType.Float32:
                {
                    var a = new float[n];
                    if (raw is not null) { Need(raw, n * 4, tp, where); for (int i = 0; i < n; i++) a[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan(i * 4)); }
                    else { NeedCount(tp.FloatData.Count, n, tp, where); tp.FloatData.CopyTo(a, 0); }
                    return Tensor.FromFloats(shape, a);
                }
                case DType.Float64:
                {
                    var a = new double[n];
                    if (raw is not null) { Need(raw, n * 8, tp, where); for (int i = 0; i < n; i++) a[i] = BinaryPrimitives.ReadDoubleLittleEndian(raw.AsSpan(i * 8)); }
                    else { NeedCount(tp.DoubleData.Count, n, tp, where); tp.DoubleData.CopyTo(a, 0); }
                    return Tensor.FromDoubles(shape, a);
                }
                case DType.Float16 or DType.BFloat16:
                {
                    var a = new float[n];
                    for (int i = 0; i < n; i++)
                    {
                        ushort bits = raw is not null ? BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(i * 2)) : (ushort)tp.Int32Data[i];
                        a[i] = type == DType.Float16 ? (float)BitConverter.UInt16BitsToHalf(bits) : BitConverter.Int32BitsToSingle(bits << 16);
                    }
                    if (raw is not null) Need(raw, n * 2, tp, where); else NeedCount(tp.Int32Data.Count, n, tp, where);
                    return Tensor.FromFloats(shape, a, type);
                }
                case DType.String:
                {
                    NeedCount(tp.StringData.Count, n, tp, where);
                    return Tensor.FromStrings(shape, tp.StringData.Select(b => b.ToStringUtf8()).Take(n).ToArray());
                }
                case DType.Int64 or DType.Int32 or DType.Int16 or DType.Int8 or DType.UInt8 or DType.UInt16 or DType.UInt32 or DType.UInt64 or DType.Bool:
                {
                    var a = new long[n];
                    int size = type switch { DType.Int64 or DType.UInt64 => 8, DType.Int32 or DType.UInt32 => 4, DType.Int16 or DType.UInt16 => 2, _ => 1 };
                    if (raw is not null)
                    {
                        Need(raw, n * size, tp, where);
                        for (int i = 0; i < n; i++)
                        {
                            var s = raw.AsSpan(i * size);
                            a[i] = type.ReadLittleEndianInteger(s);
                        }
                    }
                    else if (type == DType.Int64) { NeedCount(tp.Int64Data.Count, n, tp, where); tp.Int64Data.CopyTo(a, 0); }
                    else if (type is DType.UInt64 or DType.UInt32) { NeedCount(tp.Uint64Data.Count, n, tp, where); for (int i = 0; i < n; i++) a[i] = (long)tp.Uint64Data[i]; }
                    else { NeedCount(tp.Int32Data.Count, n, tp, where); for (int i = 0; i < n; i++) a[i] = type switch { DType.Bool => tp.Int32Data[i] != 0 ? 1 : 0, DType.UInt8 => (byte)tp.Int32Data[i], DType.UInt16 => (ushort)tp.Int32Data[i], DType.Int8 => (sbyte)tp.Int32Data[i], DType.Int16 => (short)tp.Int32Data[i], _ => tp.Int32Data[i] }; }
                    return Tensor.FromLongs(shape, a, type);
                }
                default:
                    return ExoticTensorCodec.Decode(type, shape, n, raw, tp, where);
            }
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new GateInputException($"{where}: tensor '{tp.Name}' has less data than its shape [{string.Join(",", shape)}] needs");
        }
    }

    /// <summary>Bytes of raw (little-endian, packed) data that <paramref name="count"/> elements occupy; null for types without a raw form.</summary>
    internal static long? RawByteLength(DType type, long count) => type switch
    {
        DType.Float64 or DType.Int64 or DType.UInt64 or DType.Complex64 => count * 8,
        DType.Complex128 => count * 16,
        DType.Float32 or DType.Int32 or DType.UInt32 => count * 4,
        DType.Float16 or DType.BFloat16 or DType.Int16 or DType.UInt16 => count * 2,
        DType.Int8 or DType.UInt8 or DType.Bool or DType.Float8E4M3FN or DType.Float8E4M3FNUZ or DType.Float8E5M2 or DType.Float8E5M2FNUZ or DType.Float8E8M0 => count,
        DType.Int4 or DType.UInt4 or DType.Float4E2M1 => (count + 1) / 2,
        DType.Int2 or DType.UInt2 => (count + 3) / 4,
        _ => null,
    };

    private static void Need(byte[] raw, long bytes, TensorProto tp, string where)
    {
        if (raw.Length < bytes) throw new GateInputException($"{where}: tensor '{tp.Name}' raw data has {raw.Length} bytes, shape needs {bytes}");
    }
    private static void NeedCount(int have, int need, TensorProto tp, string where)
    {
        if (have < need) throw new GateInputException($"{where}: tensor '{tp.Name}' has {have} values, shape needs {need}");
    }

    /// <summary>Serializes a tensor (float32/64, integer, bool, string) as a TensorProto with raw data.</summary>
    public static byte[] Serialize(Tensor t, string name)
    {
        var tp = new TensorProto { Name = name, DataType = (int)t.Type };
        tp.Dims.AddRange(t.Shape.Select(d => (long)d));
        if (t.Type == DType.String) { tp.StringData.AddRange(t.Strings!.Take(t.Length).Select(Google.Protobuf.ByteString.CopyFromUtf8)); }
        else
        {
            using var ms = new MemoryStream();
            Span<byte> b = stackalloc byte[8];
            for (int i = 0; i < t.Length; i++)
            {
                switch (t.Type)
                {
                    case DType.Float32: BinaryPrimitives.WriteSingleLittleEndian(b, t.Floats![i]); ms.Write(b[..4]); break;
                    case DType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(b, t.Doubles![i]); ms.Write(b[..8]); break;
                    case DType.Int64 or DType.UInt64: BinaryPrimitives.WriteInt64LittleEndian(b, t.Longs![i]); ms.Write(b[..8]); break;
                    case DType.Int32 or DType.UInt32: BinaryPrimitives.WriteInt32LittleEndian(b, (int)t.Longs![i]); ms.Write(b[..4]); break;
                    case DType.Int16 or DType.UInt16: BinaryPrimitives.WriteInt16LittleEndian(b, (short)t.Longs![i]); ms.Write(b[..2]); break;
                    case DType.Int8 or DType.UInt8 or DType.Bool: ms.WriteByte((byte)t.Longs![i]); break;
                    default: throw new NotSupportedException($"cannot serialize {t.Type}");
                }
            }
            tp.RawData = Google.Protobuf.ByteString.CopyFrom(ms.ToArray());
        }
        return Google.Protobuf.MessageExtensions.ToByteArray(tp);
    }
}

/// <summary>
/// Decoding of the narrow float and packed integer types (float8 variants, float4, int4/uint4, int2/uint2).
/// Values are widened to float32 / int64 on load. Kept apart from the common path because only conformance
/// cases use them.
/// </summary>
internal static class ExoticTensorCodec
{
    public static Tensor Decode(DType type, int[] shape, int n, byte[]? raw, TensorProto tp, string where)
    {
        int perByte = PerByte(type) ?? throw new GateInputException($"{where}: tensor '{tp.Name}' has element type {type}, which Gate does not read");
        // Without raw_data, each int32_data entry holds one byte.
        int bytes = (n + perByte - 1) / perByte;
        var packed = raw ?? tp.Int32Data.Select(v => (byte)v).ToArray();
        if (packed.Length < bytes) throw new GateInputException($"{where}: tensor '{tp.Name}' has {packed.Length} bytes of {type} data, shape needs {bytes}");
        return FromPacked(type, shape, n, packed);
    }

    /// <summary>Elements per byte of a narrow type (1 for float8, 2 for 4-bit, 4 for 2-bit types); null for any other type.</summary>
    internal static int? PerByte(DType type) => type switch
    {
        DType.Int4 or DType.UInt4 or DType.Float4E2M1 => 2,
        DType.Int2 or DType.UInt2 => 4,
        DType.Float8E4M3FN or DType.Float8E4M3FNUZ or DType.Float8E5M2 or DType.Float8E5M2FNUZ or DType.Float8E8M0 => 1,
        _ => null,
    };

    /// <summary>
    /// Reads <paramref name="n"/> elements of a narrow type from ONNX's packed layout (also ONNX Runtime's tensor
    /// memory): element 0 in the lowest bits of byte 0.
    /// </summary>
    internal static Tensor FromPacked(DType type, int[] shape, int n, ReadOnlySpan<byte> packed)
    {
        int perByte = PerByte(type)!.Value, bitsEach = 8 / perByte, mask = (1 << bitsEach) - 1;
        switch (type)
        {
            case DType.Int4 or DType.Int2:
            {
                var a = new long[n];
                for (int i = 0; i < n; i++) { int c = Code(packed, i); a[i] = c >= (1 << (bitsEach - 1)) ? c - (1 << bitsEach) : c; }
                return Tensor.FromLongs(shape, a, type);
            }
            case DType.UInt4 or DType.UInt2:
            {
                var a = new long[n];
                for (int i = 0; i < n; i++) a[i] = Code(packed, i);
                return Tensor.FromLongs(shape, a, type);
            }
            default:
            {
                var a = new float[n];
                for (int i = 0; i < n; i++) a[i] = NarrowFloats.Decode(type, Code(packed, i));
                return Tensor.FromFloats(shape, a, type);
            }
        }
        int Code(ReadOnlySpan<byte> p, int i) => (p[i / perByte] >> (i % perByte * bitsEach)) & mask;
    }

    /// <summary>Writes a narrow-typed tensor in the packed layout <see cref="FromPacked"/> reads (the inverse).</summary>
    internal static void ToPacked(Tensor t, Span<byte> packed)
    {
        int perByte = PerByte(t.Type)!.Value, bitsEach = 8 / perByte, mask = (1 << bitsEach) - 1;
        packed.Clear();
        for (int i = 0; i < t.Length; i++)
        {
            // Values are already representable (see DTypeInfo.Storage), so encoding a float is exact.
            int code = t.Type.IsFloating() ? NarrowFloats.Encode(t.Type, t.Floats![i]) : (int)t.Longs![i];
            packed[i / perByte] |= (byte)((code & mask) << (i % perByte * bitsEach));
        }
    }
}
