using System.Runtime.InteropServices;
using Gate.Core.Tensors;

namespace Gate.Core.Runtime.OnnxRuntime;

/// <summary>
/// Moves tensors across the ORT boundary. Inputs are wrapped in place over pinned managed memory (zero-copy for
/// float32, float64 and int64, which <see cref="Tensor"/> already stores natively; other types are converted to
/// their native width first). Outputs are copied out, so no ORT memory escapes a run.
/// ORT's ONNXTensorElementDataType numbers types exactly as ONNX (and as <see cref="DType"/>) does. Narrow floats
/// cross as their 8-bit codes; 4- and 2-bit types packed, element 0 in the low bits (as in ONNX raw data).
/// </summary>
internal static unsafe class OrtTensorMarshal
{
    public static bool IsSupported(DType t) => t is DType.Float32 or DType.Float64 or DType.Float16 or DType.BFloat16
        or DType.Int8 or DType.Int16 or DType.Int32 or DType.Int64
        or DType.UInt8 or DType.UInt16 or DType.UInt32 or DType.UInt64 or DType.Bool
        or DType.Float8E4M3FN or DType.Float8E4M3FNUZ or DType.Float8E5M2 or DType.Float8E5M2FNUZ or DType.Float8E8M0
        or DType.Float4E2M1 or DType.Int4 or DType.UInt4 or DType.Int2 or DType.UInt2;

    /// <summary>Elements per byte of the packed sub-byte types; 0 for the others.</summary>
    private static int PackedPerByte(DType t) => t switch
    {
        DType.Int4 or DType.UInt4 or DType.Float4E2M1 => 2, DType.Int2 or DType.UInt2 => 4, _ => 0,
    };

    /// <summary>The code of element i of a narrow-float or sub-byte integer tensor.</summary>
    private static int CodeOf(Tensor t, int i) => t.Type.Storage() == StorageKind.Float
        ? Engine.NarrowFloats.Encode(t.Type, t.Floats![i])
        : (int)t.Longs![i] & ((1 << (8 / Math.Max(1, PackedPerByte(t.Type)))) - 1);

    /// <summary>An input tensor wrapped as an OrtValue; disposing releases the value, then unpins the buffer.</summary>
    public sealed class PinnedInput : IDisposable
    {
        private GCHandle pin;
        public OrtValueHandle Value { get; } = new();

        public PinnedInput(string name, Tensor t)
        {
            if (!IsSupported(t.Type))
                throw new GateInputException($"input '{name}': element type {t.Type.OnnxName()} is not supported by Gate's ONNX Runtime binding");
            Array buffer = NativeBuffer(t, out int elementSize);
            pin = GCHandle.Alloc(buffer, GCHandleType.Pinned);
            var shape = new long[t.Rank];
            for (int i = 0; i < shape.Length; i++) shape[i] = t.Shape[i];
            try { Value.Attach(Wrap(t, shape, elementSize)); }
            catch { pin.Free(); throw; }
        }

        private nint Wrap(Tensor t, long[] shape, int elementSize)
        {
            var api = OrtLibrary.Api;
            nint raw;
            using var mem = OrtEnvironment.CpuMemory.Borrow();
            fixed (long* s = shape)
            {
                // An empty tensor still needs a valid (non-null) data pointer.
                void* data = (void*)pin.AddrOfPinnedObject();
                long dummy = 0;
                if (t.Length == 0) data = &dummy;
                long bytes = PackedPerByte(t.Type) is var per and > 0 ? (t.Length + per - 1) / per : (long)t.Length * elementSize;
                api.Check(api.CreateTensorWithDataAsOrtValue(mem.Pointer, data, (nuint)bytes, s, (nuint)shape.Length, (int)t.Type, &raw));
            }
            return raw;
        }

        public void Dispose()
        {
            Value.Dispose();
            if (pin.IsAllocated) pin.Free();
        }
    }

    private static Array NativeBuffer(Tensor t, out int elementSize)
    {
        int n = t.Length;
        switch (t.Type)
        {
            case DType.Float32: elementSize = 4; return t.Floats!;
            case DType.Float64: elementSize = 8; return t.Doubles!;
            case DType.Int64 or DType.UInt64: elementSize = 8; return t.Longs!;
            case DType.Float16:
            {
                elementSize = 2;
                var a = new ushort[n];
                for (int i = 0; i < n; i++) a[i] = BitConverter.HalfToUInt16Bits((Half)t.Floats![i]);
                return a;
            }
            case DType.BFloat16:
            {
                // Values are already rounded to bfloat16 (see DTypeInfo.Storage): the upper 16 bits are exact.
                elementSize = 2;
                var a = new ushort[n];
                for (int i = 0; i < n; i++) a[i] = (ushort)(BitConverter.SingleToUInt32Bits(t.Floats![i]) >> 16);
                return a;
            }
            case DType.Int32: { elementSize = 4; var a = new int[n]; for (int i = 0; i < n; i++) a[i] = (int)t.Longs![i]; return a; }
            case DType.UInt32: { elementSize = 4; var a = new uint[n]; for (int i = 0; i < n; i++) a[i] = (uint)t.Longs![i]; return a; }
            case DType.Int16: { elementSize = 2; var a = new short[n]; for (int i = 0; i < n; i++) a[i] = (short)t.Longs![i]; return a; }
            case DType.UInt16: { elementSize = 2; var a = new ushort[n]; for (int i = 0; i < n; i++) a[i] = (ushort)t.Longs![i]; return a; }
            case DType.Int8: { elementSize = 1; var a = new sbyte[n]; for (int i = 0; i < n; i++) a[i] = (sbyte)t.Longs![i]; return a; }
            case DType.UInt8: { elementSize = 1; var a = new byte[n]; for (int i = 0; i < n; i++) a[i] = (byte)t.Longs![i]; return a; }
            case DType.Bool: { elementSize = 1; var a = new byte[n]; for (int i = 0; i < n; i++) a[i] = t.Longs![i] != 0 ? (byte)1 : (byte)0; return a; }
            default:
            {
                // Narrow floats as 8-bit codes; 4- and 2-bit types packed.
                elementSize = 1;
                int per = Math.Max(1, PackedPerByte(t.Type)), bits = 8 / per;
                var a = new byte[(n + per - 1) / per];
                for (int i = 0; i < n; i++) a[i / per] |= (byte)(CodeOf(t, i) << (i % per * bits));
                return a;
            }
        }
    }

    /// <summary>Copies an ORT output value into a new <see cref="Tensor"/>.</summary>
    public static Tensor ToTensor(OrtApi api, nint value, string name)
    {
        int onnxType;
        api.Check(api.GetValueType(value, &onnxType));
        if (onnxType != 1) throw new GateInputException($"output '{name}' is not a tensor (ONNX type {onnxType}); Gate's ONNX Runtime binding reads tensors only");
        nint info;
        api.Check(api.GetTensorTypeAndShape(value, &info));
        DType type;
        int[] shape;
        try
        {
            int et;
            api.Check(api.GetTensorElementType(info, &et));
            type = (DType)et;
            shape = Dimensions(api, info, name);
        }
        finally { api.Release(OrtApiSlot.ReleaseTensorTypeAndShapeInfo, info); }
        if (!IsSupported(type))
            throw new GateInputException($"output '{name}': element type {type.OnnxName()} is not supported by Gate's ONNX Runtime binding");
        // ORT 1.30 accepts int2/uint2/float8e8m0 inputs under ONNX's codes but reports its Cast outputs of those types
        // one code off (int2 as 25, uint2 as 24, float8e8m0 as 26): an output claiming one of them is not trusted.
        if (type is DType.Int2 or DType.UInt2 or DType.Float8E8M0)
            throw new GateInputException($"output '{name}': ONNX Runtime reports element type {type.OnnxName()}, whose output codes it reports inconsistently; Gate does not read it");
        int n = Tensor.ElementCount(shape);
        void* data = null;
        if (n > 0) api.Check(api.GetTensorMutableData(value, &data));
        switch (type)
        {
            case DType.Float32: return Tensor.FromFloats(shape, new ReadOnlySpan<float>(data, n).ToArray());
            case DType.Float64: return Tensor.FromDoubles(shape, new ReadOnlySpan<double>(data, n).ToArray());
            case DType.Int64 or DType.UInt64: return Tensor.FromLongs(shape, new ReadOnlySpan<long>(data, n).ToArray(), type);
            case DType.Float16 or DType.BFloat16:
            {
                var src = new ReadOnlySpan<ushort>(data, n);
                var f = new float[n];
                for (int i = 0; i < n; i++)
                    f[i] = type == DType.Float16 ? (float)BitConverter.UInt16BitsToHalf(src[i]) : BitConverter.UInt32BitsToSingle((uint)src[i] << 16);
                return Tensor.FromFloats(shape, f, type);
            }
        }
        if (Engine.NarrowFloats.IsTableFormat(type) || type == DType.Float8E8M0 || PackedPerByte(type) > 0)
        {
            int per = Math.Max(1, PackedPerByte(type)), bits = 8 / per, mask = (1 << bits) - 1;
            var src = new ReadOnlySpan<byte>(data, (n + per - 1) / per).ToArray();
            int Code(int i) => (src[i / per] >> (i % per * bits)) & mask;
            if (type.Storage() == StorageKind.Float)
            {
                var f = new float[n];
                for (int i = 0; i < n; i++) f[i] = Engine.NarrowFloats.Decode(type, Code(i));
                return Tensor.FromFloats(shape, f, type);
            }
            var p = new long[n];
            bool signed = type is DType.Int4 or DType.Int2;
            for (int i = 0; i < n; i++) { int c = Code(i); p[i] = signed && c >= (1 << (bits - 1)) ? c - (1 << bits) : c; }
            return Tensor.FromLongs(shape, p, type);
        }
        var l = new long[n];
        switch (type)
        {
            case DType.Int32: { var s = new ReadOnlySpan<int>(data, n); for (int i = 0; i < n; i++) l[i] = s[i]; break; }
            case DType.UInt32: { var s = new ReadOnlySpan<uint>(data, n); for (int i = 0; i < n; i++) l[i] = s[i]; break; }
            case DType.Int16: { var s = new ReadOnlySpan<short>(data, n); for (int i = 0; i < n; i++) l[i] = s[i]; break; }
            case DType.UInt16: { var s = new ReadOnlySpan<ushort>(data, n); for (int i = 0; i < n; i++) l[i] = s[i]; break; }
            case DType.Int8: { var s = new ReadOnlySpan<sbyte>(data, n); for (int i = 0; i < n; i++) l[i] = s[i]; break; }
            case DType.UInt8: { var s = new ReadOnlySpan<byte>(data, n); for (int i = 0; i < n; i++) l[i] = s[i]; break; }
            case DType.Bool: { var s = new ReadOnlySpan<byte>(data, n); for (int i = 0; i < n; i++) l[i] = s[i] != 0 ? 1 : 0; break; }
        }
        return Tensor.FromLongs(shape, l, type);
    }

    /// <summary>Dimensions of a tensor type-and-shape info; -1 marks a dynamic dimension.</summary>
    public static int[] Dimensions(OrtApi api, nint info, string name)
    {
        nuint rank;
        api.Check(api.GetDimensionsCount(info, &rank));
        var dims = new long[(int)rank];
        fixed (long* d = dims) api.Check(api.GetDimensions(info, d, rank));
        var shape = new int[dims.Length];
        for (int i = 0; i < dims.Length; i++)
        {
            if (dims[i] > int.MaxValue) throw new GateInputException($"tensor '{name}': dimension {dims[i]} is too large");
            shape[i] = (int)dims[i];
        }
        return shape;
    }
}
