using System.Buffers.Binary;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>
/// Moves tensors across the ORT boundary, for every element type ORT takes as a dense tensor. ORT numbers element
/// types exactly as ONNX (and <see cref="DType"/>) does and lays elements out as ONNX raw_data does (little-endian,
/// packed), so one table here — <see cref="ElementSize"/>, <see cref="Encode"/>, <see cref="Decode"/> — is all a
/// new type needs. Float32, float64 and int64 inputs are wrapped in place (zero-copy: <see cref="Tensor"/> already
/// stores them natively); other inputs are encoded into a buffer ORT allocates. Outputs are copied out, so no ORT
/// memory escapes a run.
/// </summary>
internal static class OrtTensorMarshal
{
    /// <summary>Bytes per element in ORT's layout; null for types Gate does not pass to ORT (strings go their own way).</summary>
    public static int? ElementSize(DType t) => t switch
    {
        DType.Float64 or DType.Int64 or DType.UInt64 => 8,
        DType.Float32 or DType.Int32 or DType.UInt32 => 4,
        DType.Float16 or DType.BFloat16 or DType.Int16 or DType.UInt16 => 2,
        DType.Int8 or DType.UInt8 or DType.Bool => 1,
        _ => null,
    };

    /// <summary>Types Gate exchanges with ORT: strings, the types of <see cref="ElementSize"/>, and the narrow packed
    /// types (float8, float4e2m1, int4/uint4, int2/uint2), which only <see cref="OrtNativeSession"/> can pass.</summary>
    public static bool IsSupported(DType t) => t == DType.String || ElementSize(t) is not null || ExoticTensorCodec.PerByte(t) is not null;

    /// <summary>Bytes that <paramref name="count"/> elements occupy in ORT's (= ONNX raw_data's) layout, packed types included.</summary>
    public static long ByteLength(DType t, long count) =>
        Model.TensorProtoCodec.RawByteLength(t, count) ?? throw new ArgumentException($"{t} has no raw layout");

    /// <summary>An ORT shape as Gate's, each dimension checked to fit.</summary>
    public static int[] CheckedShape(IReadOnlyList<long> dims, string name)
    {
        var shape = new int[dims.Count];
        for (int i = 0; i < shape.Length; i++)
        {
            if (dims[i] is < 0 or > int.MaxValue) throw new GateInputException($"tensor '{name}': dimension {dims[i]} is out of range");
            shape[i] = (int)dims[i];
        }
        return shape;
    }

    /// <summary>An input tensor as an OrtValue (the caller disposes it after the run).</summary>
    public static OrtValue ToOrtValue(string name, Tensor t)
    {
        if (t.Type != DType.String && ElementSize(t.Type) is null)
            throw new GateInputException($"input '{name}': element type {t.Type.OnnxName()} cannot be passed to ONNX Runtime's managed API by Gate");
        var shape = t.Shape.Select(d => (long)d).ToArray();
        switch (t.Type)
        {
            case DType.Float32: return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, t.Floats.AsMemory(0, t.Length), shape);
            case DType.Float64: return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, t.Doubles.AsMemory(0, t.Length), shape);
            case DType.Int64: return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, t.Longs.AsMemory(0, t.Length), shape);
            case DType.String:
            {
                var v = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
                for (int i = 0; i < t.Length; i++) v.StringTensorSetElementAt(t.Strings![i].AsSpan(), i);
                return v;
            }
        }
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, (TensorElementType)(int)t.Type, shape);
        try { Encode(t, value.GetTensorMutableRawData()); }
        catch { value.Dispose(); throw; }
        return value;
    }

    /// <summary>Copies an ORT output value into a new <see cref="Tensor"/>.</summary>
    public static Tensor ToTensor(OrtValue value, string name)
    {
        if (value.OnnxType == OnnxValueType.ONNX_TYPE_SEQUENCE) return FromClassProbabilityMaps(value, name);
        if (!value.IsTensor) throw new GateInputException($"output '{name}' is not a tensor ({value.OnnxType}); Gate reads tensors and sequences of int64→float maps only");
        var info = value.GetTensorTypeAndShape();
        var type = (DType)(int)info.ElementDataType;
        var shape = CheckedShape(info.Shape, name);
        if (type == DType.String) return Tensor.FromStrings(shape, value.GetStringTensorAsArray());
        if (ElementSize(type) is null)
            throw new GateInputException($"output '{name}': element type {type.OnnxName()} cannot be read from ONNX Runtime by Gate");
        return Decode(type, shape, value.GetTensorMutableRawData());
    }

    /// <summary>
    /// A sequence of maps from class to score, as ai.onnx.ml ZipMap writes a classifier's probabilities (skl2onnx's
    /// `probabilities` output), read as a float tensor [samples, classes] so the checks that argmax scores use it
    /// unchanged. Column k is class k, so every map must hold exactly the int64 keys 0..C-1: string keys, other
    /// classes or maps that disagree are refused naming the output and the sample.
    /// </summary>
    private static Tensor FromClassProbabilityMaps(OrtValue sequence, string name)
    {
        var allocator = OrtAllocator.DefaultInstance;
        int n = sequence.GetValueCount();
        float[]? scores = null;
        int classes = 0;
        for (int i = 0; i < n; i++)
        {
            using var map = sequence.GetValue(i, allocator);
            if (map.OnnxType != OnnxValueType.ONNX_TYPE_MAP)
                throw new GateInputException($"output '{name}': element {i} of the sequence is {map.OnnxType}; Gate reads sequences of int64→float maps only");
            using var keys = map.GetValue(0, allocator);
            using var values = map.GetValue(1, allocator);
            var keyType = keys.GetTensorTypeAndShape().ElementDataType;
            var valueType = values.GetTensorTypeAndShape().ElementDataType;
            if (keyType != TensorElementType.Int64 || valueType != TensorElementType.Float)
                throw new GateInputException($"output '{name}': sample {i} is a map from {keyType} to {valueType}; Gate reads maps from int64 class labels " +
                                             "to float scores (string class labels cannot be matched to the dataset's integer labels)");
            var k = keys.GetTensorDataAsSpan<long>();
            var v = values.GetTensorDataAsSpan<float>();
            if (scores is null) { classes = k.Length; scores = new float[checked(n * classes)]; }
            if (k.Length != classes)
                throw new GateInputException($"output '{name}': sample {i} has {k.Length} classes, sample 0 has {classes}");
            var seen = new bool[classes];
            for (int j = 0; j < k.Length; j++)
            {
                if (k[j] < 0 || k[j] >= classes || seen[k[j]])
                    throw new GateInputException($"output '{name}': sample {i} has class {k[j]}; the classes must be 0..{classes - 1}, each once, to be compared with the labels");
                seen[k[j]] = true;
                scores[i * classes + k[j]] = v[j];
            }
        }
        return Tensor.FromFloats([n, classes], scores ?? []);
    }

    /// <summary>Writes <paramref name="t"/>'s elements into <paramref name="raw"/> in ORT's layout.</summary>
    internal static void Encode(Tensor t, Span<byte> raw)
    {
        if (ExoticTensorCodec.PerByte(t.Type) is not null) { ExoticTensorCodec.ToPacked(t, raw); return; }
        int n = t.Length, size = ElementSize(t.Type)!.Value;
        for (int i = 0; i < n; i++)
        {
            var s = raw.Slice(i * size, size);
            switch (t.Type)
            {
                case DType.Float32: BinaryPrimitives.WriteSingleLittleEndian(s, t.Floats![i]); break;
                case DType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(s, t.Doubles![i]); break;
                case DType.Float16: BinaryPrimitives.WriteHalfLittleEndian(s, (Half)t.Floats![i]); break;
                // Values are already rounded to bfloat16 (see DTypeInfo.Storage): the upper 16 bits are exact.
                case DType.BFloat16: BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)(BitConverter.SingleToUInt32Bits(t.Floats![i]) >> 16)); break;
                case DType.Int64 or DType.UInt64: BinaryPrimitives.WriteInt64LittleEndian(s, t.Longs![i]); break;
                case DType.Int32 or DType.UInt32: BinaryPrimitives.WriteUInt32LittleEndian(s, (uint)t.Longs![i]); break;
                case DType.Int16 or DType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)t.Longs![i]); break;
                case DType.Bool: s[0] = t.Longs![i] != 0 ? (byte)1 : (byte)0; break;
                default: s[0] = (byte)t.Longs![i]; break; // int8, uint8
            }
        }
    }

    /// <summary>Reads elements of <paramref name="type"/> in ORT's layout into a new tensor of that type.</summary>
    internal static Tensor Decode(DType type, int[] shape, ReadOnlySpan<byte> raw)
    {
        if (ExoticTensorCodec.PerByte(type) is not null) return ExoticTensorCodec.FromPacked(type, shape, Tensor.ElementCount(shape), raw);
        int n = Tensor.ElementCount(shape), size = ElementSize(type)!.Value;
        switch (type)
        {
            case DType.Float32:
            {
                // The common case (logits, captures): one block copy on little-endian hosts.
                var f = new float[n];
                if (BitConverter.IsLittleEndian) System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(raw[..(n * 4)]).CopyTo(f);
                else for (int i = 0; i < n; i++) f[i] = BinaryPrimitives.ReadSingleLittleEndian(raw[(i * 4)..]);
                return Tensor.FromFloats(shape, f);
            }
            case DType.Float64:
            {
                var d = new double[n];
                for (int i = 0; i < n; i++) d[i] = BinaryPrimitives.ReadDoubleLittleEndian(raw[(i * 8)..]);
                return Tensor.FromDoubles(shape, d);
            }
            case DType.Float16 or DType.BFloat16:
            {
                var f = new float[n];
                for (int i = 0; i < n; i++)
                {
                    ushort bits = BinaryPrimitives.ReadUInt16LittleEndian(raw[(i * 2)..]);
                    f[i] = type == DType.Float16 ? (float)BitConverter.UInt16BitsToHalf(bits) : BitConverter.UInt32BitsToSingle((uint)bits << 16);
                }
                return Tensor.FromFloats(shape, f, type);
            }
        }
        var l = new long[n];
        for (int i = 0; i < n; i++)
        {
            var s = raw.Slice(i * size, size);
            l[i] = type.ReadLittleEndianInteger(s);
        }
        return Tensor.FromLongs(shape, l, type);
    }
}
