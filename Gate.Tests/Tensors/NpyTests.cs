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
    public void Round_trips_every_supported_dtype(DType type)
    {
        var shape = new[] { 2, 3 };
        var t = type switch
        {
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
