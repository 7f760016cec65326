using System.Buffers.Binary;
using System.IO.Compression;
using Gate.Core.Evidence;
using Xunit;

namespace Gate.Tests.Evidence;

public class PngTests
{
    [Fact]
    public void Crc32_matches_the_standard_check_value() =>
        Assert.Equal(0xCBF43926u, Png.Crc32("123456789"u8));

    [Fact]
    public void Encoded_png_has_valid_chunks_and_round_trips_pixels()
    {
        float[] img = [0, 0.5f, 1, 2]; // 2×2; 2 clamps to 255
        var png = Png.Encode(img, 2, 2, 1, scale: 2);
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        int pos = 8;
        var idat = new MemoryStream();
        var types = new List<string>();
        while (pos < png.Length)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = System.Text.Encoding.ASCII.GetString(png, pos + 4, 4);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + len));
            Assert.Equal(Png.Crc32(png.AsSpan(pos + 4, 4 + len)), crc);
            if (type == "IHDR")
            {
                Assert.Equal(4, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos + 8)));
                Assert.Equal(4, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos + 12)));
            }
            if (type == "IDAT") idat.Write(png, pos + 8, len);
            types.Add(type);
            pos += 12 + len;
        }
        Assert.Equal(["IHDR", "IDAT", "IEND"], types);
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        var raw = new MemoryStream(); z.CopyTo(raw);
        // 4 rows of (filter byte + 4 pixels); 2× nearest-neighbour upscaling.
        Assert.Equal(new byte[] { 0, 0, 0, 128, 128, 0, 0, 0, 128, 128, 0, 255, 255, 255, 255, 0, 255, 255, 255, 255 }, raw.ToArray());
    }
}
