using System.IO.Compression;
using Gate.Core;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Tensors;

/// <summary>
/// Sequences of tensors as `gate run` reads and writes them (<see cref="ModelValue"/>): one .npz whose arrays are
/// arr_0, arr_1, … in order, as NumPy's np.savez(path, *arrays) writes them; and what a hostile archive gets.
/// </summary>
public class SequenceNpzTests
{
    private static byte[] Zip(params (string Name, byte[] Bytes, int? UnixMode)[] members)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, bytes, mode) in members)
            {
                var e = zip.CreateEntry(name, CompressionLevel.Optimal);
                if (mode is { } m) e.ExternalAttributes = m << 16;
                using var s = e.Open();
                s.Write(bytes);
            }
        return ms.ToArray();
    }

    private static byte[] NpyOf(Tensor t) => Npy.ToBytes(t);

    private static string Save(byte[] bytes)
    {
        var path = Path.Combine(TestPaths.TempDir(), "seq.npz");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void A_sequence_round_trips_in_order_with_its_element_types_and_a_tensor_stays_npy()
    {
        var elements = new List<Tensor> { Tensor.FromFloats([2, 3], [0, 1, 2, 3, 4, 5]), Tensor.FromLongs([2], [7, -1]), Tensor.FromFloats([1], [0.5f], DType.Float16) };
        var dir = TestPaths.TempDir();
        var seq = ModelValue.Of(elements);
        Assert.Equal(".npz", seq.Extension);
        seq.Write(Path.Combine(dir, "s.npz"));
        var back = ModelValue.Read(Path.Combine(dir, "s.npz"));
        Assert.Null(back.Tensor);
        Assert.Equal(3, back.Sequence!.Count);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(elements[i].Type, back.Sequence[i].Type);
            Assert.Equal(elements[i].Shape, back.Sequence[i].Shape);
        }
        Assert.Equal(elements[0].Floats!.Take(6), back.Sequence[0].Floats!.Take(6));
        Assert.Equal([7L, -1L], back.Sequence[1].Longs!.Take(2));

        var t = ModelValue.Of(elements[0]);
        Assert.Equal(".npy", t.Extension);
        t.Write(Path.Combine(dir, "t.npy"));
        Assert.Equal(elements[0].Floats!.Take(6), ModelValue.Read(Path.Combine(dir, "t.npy")).Tensor!.Floats!.Take(6));

        Assert.Null(ModelValue.None.Extension);
        ModelValue.None.Write(Path.Combine(dir, "none.npy"));
        Assert.False(File.Exists(Path.Combine(dir, "none.npy"))); // none has no file
    }

    /// <summary>Bytes NumPy 1.24 wrote: np.savez(p, np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2])),
    /// members arr_0.npy, arr_1.npy with mode 0600 (checked by hand with Debian's numpy). Rebuilt here the same way.</summary>
    [Fact]
    public void Reads_members_named_and_moded_as_numpy_writes_them_and_the_empty_sequence()
    {
        var bytes = Zip(("arr_1.npy", NpyOf(Tensor.FromLongs([2], [1, 2])), 0x180), ("arr_0.npy", NpyOf(Tensor.FromFloats([2, 3], [0, 1, 2, 3, 4, 5])), 0x180));
        var seq = ModelValue.Read(Save(bytes)).Sequence!;
        Assert.Equal([2, 3], seq[0].Shape); // by name, not by position in the archive
        Assert.Equal([2], seq[1].Shape);
        Assert.Empty(ModelValue.Read(Save(Zip())).Sequence!); // np.savez(p): no members
    }

    [Theory]
    [InlineData("other-name", "'x.npy' is not one of them")]
    [InlineData("gap", "'arr_2.npy' is not one of them")]
    [InlineData("duplicate", "'arr_0.npy' is not one of them or appears twice")]
    [InlineData("leading-zero", "'arr_01.npy' is not one of them")]
    [InlineData("newline", "'arr_0.npy?' is not one of them")]
    [InlineData("directory", "'sub/arr_0.npy' is not one of them")]
    [InlineData("symlink", "arr_0.npy: not a regular file in the archive (a symbolic link)")]
    [InlineData("fifo", "arr_0.npy: not a regular file in the archive (file type 010000)")]
    [InlineData("bad-zip", "not a valid .npz archive")]
    [InlineData("bad-member", "arr_0.npy: not a .npy file")]
    public void A_hostile_sequence_npz_is_bad_input_naming_the_file(string kind, string fragment)
    {
        var a = NpyOf(Tensor.FromFloats([1], [1]));
        byte[] bytes = kind switch
        {
            "other-name" => Zip(("arr_0.npy", a, null), ("x.npy", a, null)),
            "gap" => Zip(("arr_0.npy", a, null), ("arr_2.npy", a, null)),
            "duplicate" => Zip(("arr_0.npy", a, null), ("arr_0.npy", a, null)),
            "leading-zero" => Zip(("arr_0.npy", a, null), ("arr_01.npy", a, null)),
            "newline" => Zip(("arr_0.npy\n", a, null)),
            "directory" => Zip(("sub/arr_0.npy", a, null)),
            "symlink" => Zip(("arr_0.npy", "/etc/passwd"u8.ToArray(), 0xA1FF)),
            "fifo" => Zip(("arr_0.npy", a, 0x11B6)),
            "bad-zip" => [.. "PK\x03\x04"u8, .. new byte[40]],
            _ => Zip(("arr_0.npy", "not numpy"u8.ToArray(), null)),
        };
        var path = Save(bytes);
        var e = Assert.Throws<GateInputException>(() => ModelValue.Read(path));
        Assert.StartsWith(path, e.Message);
        Assert.Contains(fragment, e.Message);
    }

    /// <summary>All members together are capped (a zip bomb of many small-looking members); the real cap is
    /// <see cref="Npy.MaxFileBytes"/>, exercised here with a small one so the test inflates kilobytes, not gigabytes.</summary>
    [Fact]
    public void The_members_together_are_capped()
    {
        var a = NpyOf(Tensor.FromFloats([100], new float[100])); // 528 bytes
        var bytes = Zip(("arr_0.npy", a, null), ("arr_1.npy", a, null));
        Assert.Equal(2, Npy.ParseSequenceNpz(bytes, "s.npz", 2 * a.Length).Count);
        var e = Assert.Throws<GateInputException>(() => Npy.ParseSequenceNpz(bytes, "s.npz", 2 * a.Length - 1));
        Assert.Contains("s.npz:arr_1.npy: entry too large", e.Message);
    }
}
