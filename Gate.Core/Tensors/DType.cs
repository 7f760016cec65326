namespace Gate.Core.Tensors;

/// <summary>Element types, numbered as ONNX's TensorProto.DataType so the values can cross the wire unchanged.</summary>
public enum DType
{
    Undefined = 0,
    Float32 = 1,
    UInt8 = 2,
    Int8 = 3,
    UInt16 = 4,
    Int16 = 5,
    Int32 = 6,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Float16 = 10,
    Float64 = 11,
    UInt32 = 12,
    UInt64 = 13,
    Complex64 = 14,
    Complex128 = 15,
    BFloat16 = 16,
    Float8E4M3FN = 17,
    Float8E4M3FNUZ = 18,
    Float8E5M2 = 19,
    Float8E5M2FNUZ = 20,
    UInt4 = 21,
    Int4 = 22,
    Float4E2M1 = 23,
    Float8E8M0 = 24,
    UInt2 = 25,
    Int2 = 26,
}

/// <summary>How a DType is held in memory by <see cref="Tensor"/>.</summary>
public enum StorageKind { Float, Double, Long, String }

public static class DTypeInfo
{
    /// <summary>
    /// Storage class of a type. All floating types narrower than 64 bits are held as float32 values that are
    /// already rounded to the narrow type; all integers and bool are held as int64 (bool as 0/1; uint64 as its
    /// bit pattern). One storage per class keeps every kernel to at most three loops.
    /// </summary>
    public static StorageKind Storage(this DType t) => t switch
    {
        DType.Float32 or DType.Float16 or DType.BFloat16 or DType.Float8E4M3FN or DType.Float8E4M3FNUZ
            or DType.Float8E5M2 or DType.Float8E5M2FNUZ or DType.Float4E2M1 or DType.Float8E8M0 => StorageKind.Float,
        DType.Float64 => StorageKind.Double,
        DType.String => StorageKind.String,
        DType.Complex64 or DType.Complex128 or DType.Undefined => throw new NotSupportedException($"element type {t} is not supported"),
        _ => StorageKind.Long,
    };

    public static bool IsFloating(this DType t) => t.Storage() is StorageKind.Float or StorageKind.Double;
    public static bool IsInteger(this DType t) => t.Storage() == StorageKind.Long && t != DType.Bool;

    /// <summary>
    /// One integer or bool element as ONNX raw_data (and ONNX Runtime's tensor memory) lay it out: little-endian,
    /// <paramref name="raw"/> starting at the element. Both readers of that layout share this.
    /// </summary>
    public static long ReadLittleEndianInteger(this DType type, ReadOnlySpan<byte> raw) => type switch
    {
        DType.Int64 or DType.UInt64 => System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(raw),
        DType.Int32 => System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(raw),
        DType.UInt32 => System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(raw),
        DType.Int16 => System.Buffers.Binary.BinaryPrimitives.ReadInt16LittleEndian(raw),
        DType.UInt16 => System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(raw),
        DType.Int8 => (sbyte)raw[0],
        DType.Bool => raw[0] != 0 ? 1 : 0,
        _ => raw[0],
    };

    public static string OnnxName(this DType t) => t switch
    {
        DType.Float32 => "float32", DType.Float64 => "float64", DType.Float16 => "float16", DType.BFloat16 => "bfloat16",
        DType.Int64 => "int64", DType.Int32 => "int32", DType.Int16 => "int16", DType.Int8 => "int8",
        DType.UInt64 => "uint64", DType.UInt32 => "uint32", DType.UInt16 => "uint16", DType.UInt8 => "uint8",
        DType.Bool => "bool", DType.String => "string", _ => t.ToString().ToLowerInvariant(),
    };
}
