using System.Buffers.Binary;
using System.IO.Compression;

namespace Gate.Core.Evidence;

/// <summary>
/// Minimal PNG encoder (8-bit greyscale or RGB, no interlace) for evidence images such as trojan masks, so that a
/// reviewer can open them in any viewer. Own CRC-32; the zlib stream comes from System.IO.Compression.
/// </summary>
public static class Png
{
    /// <summary>Encodes values in [0,1] (clamped) of an H×W greyscale (channels 1) or H×W×3 RGB image, each pixel scaled up by an integer factor.</summary>
    public static byte[] Encode(float[] values, int height, int width, int channels = 1, int scale = 1)
    {
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), "PNG evidence images are greyscale (1) or RGB (3)");
        if (values.Length != height * width * channels) throw new ArgumentException($"expected {height}×{width}×{channels} values, got {values.Length}");
        int h = height * scale, w = width * scale;
        var raw = new byte[h * (1 + w * channels)];
        int o = 0;
        for (int y = 0; y < h; y++)
        {
            raw[o++] = 0; // filter: none
            for (int x = 0; x < w; x++)
                for (int c = 0; c < channels; c++)
                {
                    float v = values[((y / scale) * width + x / scale) * channels + c];
                    raw[o++] = (byte)Math.Round(255 * Math.Clamp(float.IsNaN(v) ? 0 : v, 0f, 1f));
                }
        }
        using var ms = new MemoryStream();
        ms.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 8;                              // bit depth
        ihdr[9] = (byte)(channels == 1 ? 0 : 2);  // colour type: greyscale / truecolour
        WriteChunk(ms, "IHDR", ihdr);
        using (var z = new MemoryStream())
        {
            using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) zs.Write(raw);
            WriteChunk(ms, "IDAT", z.ToArray());
        }
        WriteChunk(ms, "IEND", []);
        return ms.ToArray();
    }

    private static void WriteChunk(Stream s, string type, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var typed = new byte[4 + data.Length];
        for (int i = 0; i < 4; i++) typed[i] = (byte)type[i];
        data.CopyTo(typed, 4);
        s.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(len, Crc32(typed));
        s.Write(len);
    }

    private static readonly uint[] CrcTable = BuildCrcTable();

    private static uint[] BuildCrcTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }

    /// <summary>CRC-32 (ISO-HDLC, as PNG and zip use).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}
