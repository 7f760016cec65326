using Gate.Core.IO;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace Gate.Core.Tensors;

/// <summary>
/// NumPy .npy (format 1.0–3.0) and .npz reading and writing for the dtypes Gate exchanges:
/// float32/64, int32/64, uint8, bool, C order. Everything else is refused with a message that names the file.
/// </summary>
public static partial class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];
    /// <summary>Upper bound on elements read from one file; a guard against headers that claim absurd shapes.</summary>
    public const long MaxElements = 1L << 28;

    /// <summary>Largest .npy file read: <see cref="MaxElements"/> 8-byte elements plus a generous header.</summary>
    public const long MaxFileBytes = MaxElements * 8 + (1 << 20);

    public static Tensor Read(string path) => Parse(ReadBytes(path), path);

    /// <summary>
    /// The bytes of a .npy file that must be a regular file of bounded size (<see cref="RegularFile"/>: a FIFO would
    /// block until a writer appears, /dev/zero never ends).
    /// </summary>
    public static byte[] ReadBytes(string path)
    {
        if (RegularFile.KindOf(path) == RegularFile.Kind.Missing) throw new GateInputException($"file not found: {path}");
        return RegularFile.ReadAll(path, ".npy file", MaxFileBytes);
    }

    public static Tensor Parse(ReadOnlySpan<byte> bytes, string name)
    {
        if (bytes.Length < 10 || !bytes[..6].SequenceEqual(Magic))
            throw new GateInputException($"{name}: not a .npy file (missing \\x93NUMPY magic)");
        int major = bytes[6];
        int headerLen, offset;
        if (major == 1) { headerLen = BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]); offset = 10; }
        else if (major is 2 or 3)
        {
            if (bytes.Length < 12) throw new GateInputException($"{name}: truncated .npy header");
            // A 32-bit header length can claim more than the file (or an int) holds: compare before narrowing.
            uint claimed = BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]);
            if (claimed > (uint)(bytes.Length - 12)) throw new GateInputException($"{name}: truncated .npy header (it claims {claimed} bytes, the file has {bytes.Length - 12})");
            headerLen = (int)claimed; offset = 12;
        }
        else throw new GateInputException($"{name}: unsupported .npy format version {major}");
        if (offset + headerLen > bytes.Length) throw new GateInputException($"{name}: truncated .npy header");
        string header = Encoding.Latin1.GetString(bytes.Slice(offset, headerLen));
        var descr = DescrRx().Match(header);
        var fortran = FortranRx().Match(header);
        var shapeM = ShapeRx().Match(header);
        if (!descr.Success || !fortran.Success || !shapeM.Success)
            throw new GateInputException($"{name}: malformed .npy header: {header.Trim()}");
        if (fortran.Groups[1].Value == "True")
            throw new GateInputException($"{name}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray");
        var shapeText = shapeM.Groups[1].Value;
        var dims = new List<int>();
        foreach (var part in shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!long.TryParse(part.TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture, out var d) || d > int.MaxValue)
                throw new GateInputException($"{name}: bad dimension '{part}' in .npy shape ({shapeText})");
            dims.Add((int)d);
        }
        long count = 1;
        foreach (var d in dims) { count *= d; if (count > MaxElements) throw new GateInputException($"{name}: array has more than {MaxElements} elements"); }
        string d0 = descr.Groups[1].Value;
        var (type, size, bigEndian) = ParseDescr(d0, name);
        var data = bytes[(offset + headerLen)..];
        if (data.Length < count * size)
            throw new GateInputException($"{name}: truncated .npy data: shape ({shapeText}) of {d0} needs {count * size} bytes, file has {data.Length}");
        int n = (int)count;
        int[] shape = dims.ToArray();
        switch (type)
        {
            case DType.Float32:
            {
                var a = new float[n];
                for (int i = 0; i < n; i++) { var u = ReadU32(data, i * 4, bigEndian); a[i] = BitConverter.Int32BitsToSingle((int)u); }
                return Tensor.FromFloats(shape, a);
            }
            case DType.Float64:
            {
                var a = new double[n];
                for (int i = 0; i < n; i++) a[i] = BitConverter.Int64BitsToDouble((long)ReadU64(data, i * 8, bigEndian));
                return Tensor.FromDoubles(shape, a);
            }
            default:
            {
                var a = new long[n];
                for (int i = 0; i < n; i++)
                    a[i] = type switch
                    {
                        DType.Int64 => (long)ReadU64(data, i * 8, bigEndian),
                        DType.Int32 => (int)ReadU32(data, i * 4, bigEndian),
                        DType.UInt8 => data[i],
                        DType.Bool => data[i] != 0 ? 1 : 0,
                        _ => throw new InvalidOperationException(),
                    };
                return Tensor.FromLongs(shape, a, type);
            }
        }
    }

    private static uint ReadU32(ReadOnlySpan<byte> d, int at, bool be) =>
        be ? BinaryPrimitives.ReadUInt32BigEndian(d[at..]) : BinaryPrimitives.ReadUInt32LittleEndian(d[at..]);
    private static ulong ReadU64(ReadOnlySpan<byte> d, int at, bool be) =>
        be ? BinaryPrimitives.ReadUInt64BigEndian(d[at..]) : BinaryPrimitives.ReadUInt64LittleEndian(d[at..]);

    private static (DType, int, bool) ParseDescr(string descr, string name)
    {
        if (descr.TrimStart('<', '>', '|', '=').StartsWith('O')) throw new GateInputException($"{name}: object arrays (dtype '{descr}') are not supported");
        char order = descr.Length > 0 ? descr[0] : '?';
        bool be = order == '>';
        string code = order is '<' or '>' or '|' or '=' ? descr[1..] : descr;
        return code switch
        {
            "f4" => (DType.Float32, 4, be),
            "f8" => (DType.Float64, 8, be),
            "i4" => (DType.Int32, 4, be),
            "i8" => (DType.Int64, 8, be),
            "u1" => (DType.UInt8, 1, false),
            "b1" => (DType.Bool, 1, false),
            _ => throw new GateInputException($"{name}: unsupported dtype '{descr}' (expected float32/64, int32/64, uint8 or bool)"),
        };
    }

    public static void Write(string path, Tensor t)
    {
        using var fs = File.Create(path);
        Write(fs, t);
    }

    public static void Write(Stream s, Tensor t)
    {
        string descr = t.Type switch
        {
            DType.Float32 => "<f4", DType.Float64 => "<f8", DType.Int32 => "<i4", DType.Int64 => "<i8",
            DType.UInt8 => "|u1", DType.Bool => "|b1",
            _ => throw new GateInputException($"cannot write element type {t.Type.OnnxName()} to .npy"),
        };
        string shape = t.Rank == 1 ? $"({t.Shape[0]},)" : "(" + string.Join(", ", t.Shape) + ")";
        string header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        int total = 10 + header.Length + 1;
        int pad = (64 - total % 64) % 64;
        header = header + new string(' ', pad) + "\n";
        var hb = Encoding.Latin1.GetBytes(header);
        s.Write(Magic);
        s.WriteByte(1); s.WriteByte(0);
        Span<byte> len = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)hb.Length);
        s.Write(len);
        s.Write(hb);
        Span<byte> buf = stackalloc byte[8];
        for (int i = 0; i < t.Length; i++)
        {
            switch (t.Type)
            {
                case DType.Float32: BinaryPrimitives.WriteSingleLittleEndian(buf, t.Floats![i]); s.Write(buf[..4]); break;
                case DType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(buf, t.Doubles![i]); s.Write(buf[..8]); break;
                case DType.Int32: BinaryPrimitives.WriteInt32LittleEndian(buf, (int)t.Longs![i]); s.Write(buf[..4]); break;
                case DType.Int64: BinaryPrimitives.WriteInt64LittleEndian(buf, t.Longs![i]); s.Write(buf[..8]); break;
                default: s.WriteByte((byte)t.Longs![i]); break;
            }
        }
    }

    /// <summary>Reads every array of an .npz archive (stored or deflated), keyed by name without ".npy".</summary>
    public static Dictionary<string, Tensor> ReadNpz(string path)
    {
        try
        {
            using var zip = ZipFile.OpenRead(path);
            var result = new Dictionary<string, Tensor>();
            foreach (var e in zip.Entries)
            {
                if (!e.FullName.EndsWith(".npy", StringComparison.Ordinal)) continue;
                if (e.Length > MaxElements * 8) throw new GateInputException($"{path}:{e.FullName}: entry too large");
                using var es = e.Open();
                using var ms = new MemoryStream();
                es.CopyTo(ms);
                result[e.FullName[..^4]] = Parse(ms.ToArray(), $"{path}:{e.FullName}");
            }
            return result;
        }
        catch (InvalidDataException e) { throw new GateInputException($"{path}: not a valid .npz archive: {e.Message}"); }
    }

    public static void WriteNpz(string path, IReadOnlyDictionary<string, Tensor> arrays)
    {
        using var fs = File.Create(path);
        using var zip = new ZipArchive(fs, ZipArchiveMode.Create);
        foreach (var (k, v) in arrays)
        {
            using var es = zip.CreateEntry(k + ".npy", CompressionLevel.Optimal).Open();
            Write(es, v);
        }
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")] private static partial Regex DescrRx();
    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")] private static partial Regex FortranRx();
    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")] private static partial Regex ShapeRx();
}
