using System.Buffers.Binary;
using Gate.Core;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;
using SkiaSharp;

namespace Gate.Tests.Tensors;

/// <summary>
/// Image datasets (<see cref="ImageDataset"/>): the ImageFolder layout and manifests give the same samples and
/// labels, decoding is bounded before any pixel memory exists, and every bad image is bad input naming the file.
/// </summary>
public class ImageDatasetTests
{
    /// <summary>Writes a w×h PNG filled with one colour; returns its path.</summary>
    internal static string Png(string path, int w, int h, SKColor colour)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bmp = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        bmp.Erase(colour);
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
        return path;
    }

    [Fact]
    public void Folder_layout_sorts_class_folders_into_labels_and_decodes_rgb_pixels_in_0_1()
    {
        var root = TestPaths.TempDir("images-folder");
        Png(Path.Combine(root, "b_red", "x.png"), 2, 2, new SKColor(255, 0, 0));
        Png(Path.Combine(root, "a_blue", "y.png"), 2, 2, new SKColor(0, 0, 255));
        Png(Path.Combine(root, "a_blue", "sub", "z.png"), 2, 2, new SKColor(0, 51, 255));
        File.WriteAllText(Path.Combine(root, "a_blue", "notes.txt"), "not an image: ignored, as torchvision does");
        Png(Path.Combine(root, ".hidden", "h.png"), 2, 2, SKColors.White);

        var d = ImageDataset.Read(root, null);
        Assert.Equal(["a_blue", "b_red"], d.Source.Classes);
        Assert.Equal([0L, 0, 1], d.Labels.Longs!.ToArray());
        Assert.Equal([3, 3, 2, 2], d.Inputs.Shape);
        var px = d.Inputs.Floats!.ToArray();
        // sample 0 (a_blue/sub/z.png sorts before a_blue/y.png): R=0, G=51/255, B=1
        Assert.Equal(0f, px[0]); Assert.Equal(51 / 255f, px[4]); Assert.Equal(1f, px[8]);
        // sample 2 (b_red/x.png): R=1, B=0
        Assert.Equal(1f, px[24]); Assert.Equal(0f, px[24 + 8]);
        Assert.Equal(3, d.Source.Files);
    }

    [Fact]
    public void Csv_and_jsonl_manifests_give_the_samples_they_list_in_order()
    {
        var root = TestPaths.TempDir("images-manifest");
        Png(Path.Combine(root, "img", "red.png"), 2, 2, new SKColor(255, 0, 0));
        Png(Path.Combine(root, "img", "green.png"), 2, 2, new SKColor(0, 255, 0));
        File.WriteAllText(Path.Combine(root, "m.csv"), "label,path\n3,img/green.png\n1,img/red.png\n");
        File.WriteAllText(Path.Combine(root, "m.jsonl"), "{\"path\": \"img/green.png\", \"label\": 3}\n{\"path\": \"img/red.png\", \"label\": 1}\n");
        var csv = ImageDataset.Read(Path.Combine(root, "m.csv"), null);
        var jsonl = ImageDataset.Read(Path.Combine(root, "m.jsonl"), null);
        Assert.Equal([3L, 1], csv.Labels.Longs!.ToArray());
        Assert.Equal(Npy.ToBytes(csv.Inputs), Npy.ToBytes(jsonl.Inputs));
        Assert.Equal(csv.Source.Sha256, jsonl.Source.Sha256);
        Assert.Equal(1f, csv.Inputs.Floats![4]); // green channel of the first sample
    }

    [Theory]
    [InlineData("path,label\n../outside.png,0\n", "m.csv:2", "leaves the manifest's folder")]
    [InlineData("path,label\n/etc/passwd,0\n", "m.csv:2", "must be relative")]
    [InlineData("path,label\nimg/red.png,cat\n", "m.csv:2", "not a class index")]
    [InlineData("file,class\nimg/red.png,0\n", "m.csv:1", "header naming the columns path and label")]
    public void A_bad_manifest_line_is_bad_input_naming_the_line(string text, string where, string why)
    {
        var root = TestPaths.TempDir("images-bad-manifest");
        Png(Path.Combine(root, "img", "red.png"), 2, 2, new SKColor(255, 0, 0));
        File.WriteAllText(Path.Combine(root, "m.csv"), text);
        var e = Assert.Throws<GateInputException>(() => ImageDataset.Read(Path.Combine(root, "m.csv"), null));
        Assert.Contains(where, e.Message);
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void Truncated_png_is_bad_input_naming_the_file()
    {
        var root = TestPaths.TempDir("images-truncated");
        Png(Path.Combine(root, "a", "ok.png"), 8, 8, SKColors.Red);
        var bad = Png(Path.Combine(root, "a", "bad.png"), 8, 8, SKColors.Blue);
        var bytes = File.ReadAllBytes(bad);
        File.WriteAllBytes(bad, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<GateInputException>(() => ImageDataset.Read(root, null));
        Assert.Contains(bad, e.Message);
        Assert.Contains("malformed PNG", e.Message);
    }

    [Fact]
    public void A_file_that_is_neither_png_nor_jpeg_never_reaches_the_decoder()
    {
        var root = TestPaths.TempDir("images-signature");
        var gif = Path.Combine(root, "a", "x.png");
        Directory.CreateDirectory(Path.GetDirectoryName(gif)!);
        File.WriteAllBytes(gif, "GIF89a\x01\x00\x01\x00"u8.ToArray());
        var e = Assert.Throws<GateInputException>(() => ImageDataset.Read(root, null));
        Assert.Contains(gif, e.Message);
        Assert.Contains("not a PNG or JPEG", e.Message);
    }

    /// <summary>
    /// A PNG whose header claims 100000×100000 pixels and carries no pixel data: refused by size from the header,
    /// before any pixel memory is allocated (a decompression bomb never gets decoded).
    /// </summary>
    [Fact]
    public void Oversized_image_is_refused_from_its_header_before_decoding()
    {
        var root = TestPaths.TempDir("images-oversized");
        var huge = Path.Combine(root, "a", "huge.png");
        Directory.CreateDirectory(Path.GetDirectoryName(huge)!);
        File.WriteAllBytes(huge, PngHeaderOnly(100_000, 100_000));
        var e = Assert.Throws<GateInputException>(() => ImageDataset.Read(root, null));
        Assert.Contains(huge, e.Message);
        Assert.Contains("100000×100000", e.Message);
        Assert.Contains("more than the limit", e.Message);

        // The same for a JPEG whose frame header claims 65535×65535 (SOF0 after an APP0 segment).
        File.Delete(huge);
        var jpeg = Path.Combine(root, "a", "huge.jpg");
        File.WriteAllBytes(jpeg, [0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0, 0xFF, 0xD9]);
        var je = Assert.Throws<GateInputException>(() => ImageDataset.Read(root, null));
        Assert.Contains(jpeg, je.Message);
        Assert.Contains("65535×65535", je.Message);
        File.Delete(jpeg);

        // The file-size and count caps, too.
        Png(Path.Combine(root, "a", "small.png"), 4, 4, SKColors.Red);
        var big = Assert.Throws<GateInputException>(() => ImageDataset.Read(root, null, new ImageLimits(MaxFileBytes: 10)));
        Assert.Contains("small.png", big.Message);
        Assert.Contains("limit 10", big.Message);
        var pixels = Assert.Throws<GateInputException>(() => ImageDataset.Read(root, null, new ImageLimits(MaxPixels: 15)));
        Assert.Contains("4×4 = 16 pixels", pixels.Message);
    }

    [Fact]
    public void Images_of_different_sizes_need_declared_geometry_and_get_torchvision_resize_and_centre_crop()
    {
        var root = TestPaths.TempDir("images-geometry");
        Png(Path.Combine(root, "a", "wide.png"), 40, 20, SKColors.Red);
        var tall = Png(Path.Combine(root, "a", "x_tall.png"), 10, 30, SKColors.Red);
        var e = Assert.Throws<GateInputException>(() => ImageDataset.Read(root, null));
        Assert.Contains(tall, e.Message);
        Assert.Contains("resize/centerCrop", e.Message);

        // Shorter side to 12 (wide: 24×12, tall: 12×36), then the centre 8×8.
        var d = ImageDataset.Read(root, new Preprocessing { Resize = [12], CenterCrop = [8, 8] }.Geometry);
        Assert.Equal([2, 3, 8, 8], d.Inputs.Shape);
        Assert.All(d.Inputs.Floats!.ToArray().Where((_, i) => i % 192 < 64), v => Assert.Equal(1f, v)); // red plane stays red
    }

    [Fact]
    public void Symbolic_links_inside_the_image_folder_are_refused()
    {
        var root = TestPaths.TempDir("images-links");
        var target = Png(Path.Combine(TestPaths.TempDir("images-elsewhere"), "secret.png"), 2, 2, SKColors.Red);
        Png(Path.Combine(root, "a", "ok.png"), 2, 2, SKColors.Red);
        var link = Path.Combine(root, "a", "z.png");
        File.CreateSymbolicLink(link, target);
        var e = Assert.Throws<GateInputException>(() => ImageDataset.Read(root, null));
        Assert.Contains(link, e.Message);
        Assert.Contains("links are not followed", e.Message);
    }

    /// <summary>PNG signature + a valid IHDR chunk (8-bit RGB) claiming w×h, then IEND: no image data at all.</summary>
    private static byte[] PngHeaderOnly(int w, int h)
    {
        var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        void Chunk(string type, byte[] data)
        {
            var len = new byte[4]; BinaryPrimitives.WriteInt32BigEndian(len, data.Length); ms.Write(len);
            var body = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            ms.Write(body);
            var crc = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(body)); ms.Write(crc);
        }
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w); BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 8; ihdr[9] = 2;
        Chunk("IHDR", ihdr);
        Chunk("IEND", []);
        return ms.ToArray();
    }

    private static uint Crc32(byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }
}
