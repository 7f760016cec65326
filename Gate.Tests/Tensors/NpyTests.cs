using System.Text;
using Gate.Core;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Tensors;

public class NpyTests
{
    private static byte[] Header(string dict)
    {
        var h = dict;
        int total = 10 + h.Length + 1;
        h += new string(' ', (64 - total % 64) % 64) + "\n";
        var b = new List<byte> { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, (byte)(h.Length & 0xff), (byte)(h.Length >> 8) };
        b.AddRange(Encoding.Latin1.GetBytes(h));
        return b.ToArray();
    }

    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.Float64)]
    [InlineData(DType.Int32)]
    [InlineData(DType.Int64)]
    [InlineData(DType.UInt8)]
    [InlineData(DType.Bool)]
    [InlineData(DType.Int8)]
    [InlineData(DType.Int16)]
    [InlineData(DType.UInt16)]
    [InlineData(DType.UInt32)]
    [InlineData(DType.UInt64)]
    [InlineData(DType.Float16)]
    [InlineData(DType.BFloat16)]
    [InlineData(DType.Float8E4M3FN)]
    [InlineData(DType.Float8E5M2)]
    [InlineData(DType.Float8E8M0)]
    [InlineData(DType.Int4)]
    [InlineData(DType.UInt2)]
    public void Round_trips_every_supported_dtype(DType type)
    {
        var shape = new[] { 2, 3 };
        var t = type switch
        {
            DType.Int8 => Tensor.FromLongs(shape, [-128, -1, 0, 1, 100, 127], type),
            DType.Int16 => Tensor.FromLongs(shape, [short.MinValue, -1, 0, 1, 300, short.MaxValue], type),
            DType.UInt16 => Tensor.FromLongs(shape, [0, 1, 2, 40000, 65534, 65535], type),
            DType.UInt32 => Tensor.FromLongs(shape, [0, 1, 2, 3_000_000_000, 4_294_967_294, uint.MaxValue], type),
            DType.UInt64 => Tensor.FromLongs(shape, [0, 1, 2, long.MaxValue, unchecked((long)ulong.MaxValue), long.MinValue], type),
            DType.Float16 => Tensor.FromFloats(shape, [1.5f, -2, 65504, (float)Half.Epsilon, 0, float.NegativeInfinity], type),
            DType.BFloat16 => Tensor.FromFloats(shape, [1.5f, -2, 65536, 0.0078125f, 0, -0.25f], type),
            DType.Float8E4M3FN => Tensor.FromFloats(shape, [1.5f, -2, 448, 0.001953125f, 0, float.NaN], type),
            DType.Float8E5M2 => Tensor.FromFloats(shape, [1.5f, -2, 57344, float.PositiveInfinity, 0, -0.25f], type),
            DType.Float8E8M0 => Tensor.FromFloats(shape, [1, 2, 0.5f, MathF.Pow(2, -127), MathF.Pow(2, 127), float.NaN], type),
            DType.Int4 => Tensor.FromLongs(shape, [-8, -1, 0, 1, 6, 7], type),
            DType.UInt2 => Tensor.FromLongs(shape, [0, 1, 2, 3, 3, 0], type),
            DType.Float32 => Tensor.FromFloats(shape, [1.5f, -2, 3, float.MaxValue, 0, -0.25f]),
            DType.Float64 => Tensor.FromDoubles(shape, [1.5, -2, 3, double.MaxValue, 0, -0.25]),
            DType.Bool => Tensor.FromLongs(shape, [1, 0, 1, 1, 0, 0], type),
            DType.UInt8 => Tensor.FromLongs(shape, [0, 1, 2, 128, 254, 255], type),
            _ => Tensor.FromLongs(shape, [int.MinValue, -1, 0, 1, 7, int.MaxValue], type),
        };
        var path = Path.Combine(TestPaths.TempDir(), "t.npy");
        Npy.Write(path, t);
        var back = Npy.Read(path);
        Assert.Equal(type, back.Type);
        Assert.Equal(shape, back.Shape);
        Assert.Equal(t.ToDoubleArray(), back.ToDoubleArray());
        if (t.Longs is not null) Assert.Equal(t.Longs, back.Longs); // uint64 as its bit pattern, exactly
    }

    [Fact]
    public void Reads_big_endian_and_unicode_arrays_as_numpy_writes_them()
    {
        var path = Path.Combine(TestPaths.TempDir(), "be.npy");
        File.WriteAllBytes(path, [.. Header("{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }"), 0xFF, 0xFE, 0x01, 0x00]);
        Assert.Equal(new long[] { -2, 256 }, Npy.Read(path).Longs);
        File.WriteAllBytes(path, [.. Header("{'descr': '>u4', 'fortran_order': False, 'shape': (1,), }"), 0xFF, 0xFF, 0xFF, 0xFE]);
        Assert.Equal(4_294_967_294L, Npy.Read(path).Longs![0]);

        var s = Tensor.FromStrings([3], ["héllo", "", "𝛆 = 8/255"]);
        Npy.Write(path, s);
        var back = Npy.Read(path);
        Assert.Equal(DType.String, back.Type);
        Assert.Equal(s.Strings, back.Strings);
    }

    [Theory]
    [InlineData("[('int4', '|i1')]", new byte[] { 8 }, "element 0 (8) is outside int4's range [-8, 7]")]
    [InlineData("[('float8e4m3fn', '<f4')]", new byte[] { 0, 0, 0xC0, 0x3F, 0xCD, 0xCC, 0xCC, 0x3D }, "element 1 (0.1) is not a float8e4m3fn value")]
    [InlineData("[('float8e4m3fn', '<f8')]", new byte[] { 0, 0, 0, 0, 0, 0, 0, 0 }, "float8e4m3fn values must be stored as '<f4'")]
    [InlineData("[('complex32', '<f4')]", new byte[] { 0, 0, 0, 0 }, "structured dtype field 'complex32' is not an ONNX element type")]
    public void Narrow_type_arrays_are_checked_against_their_type(string descr, byte[] data, string fragment)
    {
        int n = descr.Contains("i1") ? data.Length : descr.Contains("f8") ? data.Length / 8 : data.Length / 4;
        var path = Path.Combine(TestPaths.TempDir(), "n.npy");
        File.WriteAllBytes(path, [.. Header($"{{'descr': {descr}, 'fortran_order': False, 'shape': ({n},), }}"), .. data]);
        var e = Assert.Throws<GateInputException>(() => Npy.Read(path));
        Assert.StartsWith(path, e.Message);
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void Reads_the_fixture_data_with_manifest_shapes()
    {
        var x = Npy.Read(TestPaths.FixtureData("digits_test_x.npy"));
        var y = Npy.Read(TestPaths.FixtureData("digits_test_y.npy"));
        Assert.Equal(new[] { 360, 1, 8, 8 }, x.Shape);
        Assert.Equal(DType.Int64, y.Type);
        Assert.Equal(36, y.Longs!.Count(v => v == 0)); // MANIFEST: 36 test images of class 0
        Assert.All(x.Floats!, v => Assert.InRange(v, 0f, 1f));
    }

    [Fact]
    public void Npz_round_trip()
    {
        var path = Path.Combine(TestPaths.TempDir(), "a.npz");
        Npy.WriteNpz(path, new Dictionary<string, Tensor> { ["a"] = Tensor.FromFloats([2], [1, 2]), ["b"] = Tensor.FromLongs([1], [9]) });
        var d = Npy.ReadNpz(path);
        Assert.Equal(new float[] { 1, 2 }, d["a"].Floats);
        Assert.Equal(9, d["b"].Longs![0]);
    }

    [Theory]
    [InlineData("fortran", "Fortran-ordered arrays are not supported")]
    [InlineData("object", "object arrays (dtype '|O') are not supported")]
    [InlineData("truncated", "truncated .npy data: shape (4,) of <f4 needs 16 bytes, file has 8")]
    [InlineData("complex", "unsupported dtype '<c8'")]
    [InlineData("garbage", "not a .npy file")]
    public void Bad_files_give_clear_errors(string kind, string fragment)
    {
        byte[] bytes = kind switch
        {
            "fortran" => [.. Header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }"), .. new byte[16]],
            "object" => [.. Header("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"), .. new byte[16]],
            "truncated" => [.. Header("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }"), .. new byte[8]],
            "complex" => [.. Header("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }"), .. new byte[8]],
            _ => Encoding.ASCII.GetBytes("hello world, not numpy"),
        };
        var path = Path.Combine(TestPaths.TempDir(), kind + ".npy");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<GateInputException>(() => Npy.Read(path));
        Assert.StartsWith(path, e.Message);
        Assert.Contains(fragment, e.Message);
    }
}
