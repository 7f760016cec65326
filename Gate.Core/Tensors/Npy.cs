using Gate.Core.IO;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace Gate.Core.Tensors;

/// <summary>
/// NumPy .npy (format 1.0–3.0) and .npz reading and writing for every standard NumPy dtype ONNX shares:
/// float16/32/64, int8/16/32/64, uint8/16/32/64, bool and unicode strings ('&lt;U'), C order, either byte order.
/// ONNX types NumPy has no code for (bfloat16, the float8 family, float4e2m1, int4/uint4, int2/uint2) are written
/// as a one-field structured array named after the ONNX type holding the values — float32 ('&lt;f4') for the floats,
/// int8 ('|i1') for the integers — e.g. <c>'descr': [('float8e4m3fn', '&lt;f4')]</c>; NumPy loads it, and
/// <c>a['float8e4m3fn']</c> gives the values. Reading one re-checks that every value is representable in the type.
/// Everything else (complex, object) is refused with a message that names the file.
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
        var narrow = NarrowDescrRx().Match(header);
        var fortran = FortranRx().Match(header);
        var shapeM = ShapeRx().Match(header);
        if (!(descr.Success || narrow.Success) || !fortran.Success || !shapeM.Success)
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
        string d0 = descr.Success ? descr.Groups[1].Value : narrow.Groups[2].Value;
        var (type, size, bigEndian) = ParseDescr(d0, name);
        DType? narrowType = null;
        if (!descr.Success)
        {
            var tag = narrow.Groups[1].Value;
            narrowType = NarrowTypes.FirstOrDefault(t => t.OnnxName() == tag);
            if (narrowType == DType.Undefined)
                throw new GateInputException($"{name}: structured dtype field '{tag}' is not an ONNX element type Gate reads (expected one of {string.Join(", ", NarrowTypes.Select(t => t.OnnxName()))})");
            var carrier = narrowType.Value.Storage() == StorageKind.Float ? DType.Float32 : DType.Int8;
            if (type != carrier)
                throw new GateInputException($"{name}: {tag} values must be stored as {(carrier == DType.Float32 ? "'<f4'" : "'|i1'")}, got '{d0}'");
        }
        var data = bytes[(offset + headerLen)..];
        if (data.Length < count * size)
            throw new GateInputException($"{name}: truncated .npy data: shape ({shapeText}) of {d0} needs {count * size} bytes, file has {data.Length}");
        int n = (int)count;
        int[] shape = dims.ToArray();
        var t = Decode(type, shape, data, size, bigEndian, name);
        return narrowType is { } nt ? Narrow(t, nt, name) : t;
    }

    /// <summary>ONNX element types with no NumPy code, carried as a tagged structured array (see the class summary).</summary>
    private static readonly DType[] NarrowTypes =
    [
        DType.BFloat16, DType.Float8E4M3FN, DType.Float8E4M3FNUZ, DType.Float8E5M2, DType.Float8E5M2FNUZ, DType.Float8E8M0,
        DType.Float4E2M1, DType.Int4, DType.UInt4, DType.Int2, DType.UInt2,
    ];

    private static bool Representable(DType type, float v)
    {
        if (type == DType.BFloat16) return float.IsNaN(v) || (BitConverter.SingleToUInt32Bits(v) & 0xFFFF) == 0;
        try
        {
            float back = NarrowFloats.Decode(type, NarrowFloats.Encode(type, v));
            return BitConverter.SingleToInt32Bits(back) == BitConverter.SingleToInt32Bits(v) || (float.IsNaN(back) && float.IsNaN(v));
        }
        catch (ArgumentException) { return false; }
    }

    /// <summary>The carried values as <paramref name="type"/>; a value the type cannot hold exactly is bad input.</summary>
    private static Tensor Narrow(Tensor carried, DType type, string name)
    {
        if (type.Storage() == StorageKind.Float)
        {
            var v = carried.Floats!.AsSpan(0, carried.Length).ToArray();
            for (int i = 0; i < v.Length; i++)
                if (!Representable(type, v[i])) throw new GateInputException($"{name}: element {i} ({v[i]:R}) is not a {type.OnnxName()} value");
            return Tensor.FromFloats(carried.Shape, v, type);
        }
        var (lo, hi) = type switch { DType.Int4 => (-8, 7), DType.UInt4 => (0, 15), DType.Int2 => (-2, 1), _ => (0, 3) };
        var l = carried.Longs!;
        for (int i = 0; i < carried.Length; i++)
            if (l[i] < lo || l[i] > hi) throw new GateInputException($"{name}: element {i} ({l[i]}) is outside {type.OnnxName()}'s range [{lo}, {hi}]");
        return Tensor.FromLongs(carried.Shape, l, type);
    }

    private static Tensor Decode(DType type, int[] shape, ReadOnlySpan<byte> data, int size, bool bigEndian, string name)
    {
        int n = Tensor.ElementCount(shape);
        switch (type)
        {
            case DType.Float32:
            {
                var a = new float[n];
                for (int i = 0; i < n; i++) { var u = ReadU32(data, i * 4, bigEndian); a[i] = BitConverter.Int32BitsToSingle((int)u); }
                return Tensor.FromFloats(shape, a);
            }
            case DType.Float16:
            {
                // Tensor holds float16 as float32 values that are exactly representable in float16 (DTypeInfo.Storage).
                var a = new float[n];
                for (int i = 0; i < n; i++) a[i] = (float)BitConverter.UInt16BitsToHalf(ReadU16(data, i * 2, bigEndian));
                return Tensor.FromFloats(shape, a, DType.Float16);
            }
            case DType.Float64:
            {
                var a = new double[n];
                for (int i = 0; i < n; i++) a[i] = BitConverter.Int64BitsToDouble((long)ReadU64(data, i * 8, bigEndian));
                return Tensor.FromDoubles(shape, a);
            }
            case DType.String:
            {
                // '<U{k}': k UTF-32 code units per element, NUL-padded at the end (NumPy strips trailing NULs too).
                int units = size / 4;
                var a = new string[n];
                var sb = new StringBuilder();
                for (int i = 0; i < n; i++)
                {
                    sb.Clear();
                    for (int k = 0; k < units; k++)
                    {
                        uint cp = ReadU32(data, (i * units + k) * 4, bigEndian);
                        if (cp == 0) break;
                        if (cp > 0x10FFFF || cp is >= 0xD800 and <= 0xDFFF) throw new GateInputException($"{name}: element {i} holds an invalid code point U+{cp:X}");
                        sb.Append(char.ConvertFromUtf32((int)cp));
                    }
                    a[i] = sb.ToString();
                }
                return Tensor.FromStrings(shape, a);
            }
            default:
            {
                var a = new long[n];
                for (int i = 0; i < n; i++)
                    a[i] = type switch
                    {
                        DType.Int64 or DType.UInt64 => (long)ReadU64(data, i * 8, bigEndian), // uint64 as its bit pattern
                        DType.Int32 => (int)ReadU32(data, i * 4, bigEndian),
                        DType.UInt32 => ReadU32(data, i * 4, bigEndian),
                        DType.Int16 => (short)ReadU16(data, i * 2, bigEndian),
                        DType.UInt16 => ReadU16(data, i * 2, bigEndian),
                        DType.Int8 => (sbyte)data[i],
                        DType.UInt8 => data[i],
                        DType.Bool => data[i] != 0 ? 1 : 0,
                        _ => throw new InvalidOperationException(),
                    };
                return Tensor.FromLongs(shape, a, type);
            }
        }
    }

    private static ushort ReadU16(ReadOnlySpan<byte> d, int at, bool be) =>
        be ? BinaryPrimitives.ReadUInt16BigEndian(d[at..]) : BinaryPrimitives.ReadUInt16LittleEndian(d[at..]);
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
        if (code.Length > 1 && code[0] == 'U' && int.TryParse(code.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out int chars) && chars is > 0 and <= MaxStringChars)
            return (DType.String, chars * 4, be);
        return code switch
        {
            "f2" => (DType.Float16, 2, be),
            "f4" => (DType.Float32, 4, be),
            "f8" => (DType.Float64, 8, be),
            "i1" => (DType.Int8, 1, false),
            "i2" => (DType.Int16, 2, be),
            "i4" => (DType.Int32, 4, be),
            "i8" => (DType.Int64, 8, be),
            "u1" => (DType.UInt8, 1, false),
            "u2" => (DType.UInt16, 2, be),
            "u4" => (DType.UInt32, 4, be),
            "u8" => (DType.UInt64, 8, be),
            "b1" => (DType.Bool, 1, false),
            _ => throw new GateInputException($"{name}: unsupported dtype '{descr}' (expected float16/32/64, int8/16/32/64, uint8/16/32/64, bool or unicode '<U'; " +
                "complex, object, bfloat16 and float8 arrays have no ONNX-compatible NumPy code)"),
        };
    }

    /// <summary>Longest string element read ('&lt;U' width); a guard like <see cref="MaxElements"/>.</summary>
    public const int MaxStringChars = 1 << 16;

    /// <summary>The .npy bytes of <paramref name="t"/> (what a digest of an in-memory array is taken over).</summary>
    public static byte[] ToBytes(Tensor t)
    {
        using var ms = new MemoryStream();
        Write(ms, t);
        return ms.ToArray();
    }

    public static void Write(string path, Tensor t)
    {
        using var fs = File.Create(path);
        Write(fs, t);
    }

    public static void Write(Stream s, Tensor t)
    {
        int stringChars = t.Type == DType.String ? Math.Max(1, t.Strings!.Take(t.Length).Select(x => x.EnumerateRunes().Count()).DefaultIfEmpty(1).Max()) : 0;
        string descr = t.Type switch
        {
            DType.Float16 => "<f2", DType.Float32 => "<f4", DType.Float64 => "<f8",
            DType.Int8 => "|i1", DType.Int16 => "<i2", DType.Int32 => "<i4", DType.Int64 => "<i8",
            DType.UInt8 => "|u1", DType.UInt16 => "<u2", DType.UInt32 => "<u4", DType.UInt64 => "<u8",
            DType.Bool => "|b1", DType.String => $"<U{stringChars}",
            _ when NarrowTypes.Contains(t.Type) => null!,
            _ => throw new GateInputException($"cannot write element type {t.Type.OnnxName()} to .npy (NumPy has no standard code for it)"),
        };
        string shape = t.Rank == 1 ? $"({t.Shape[0]},)" : "(" + string.Join(", ", t.Shape) + ")";
        bool narrow = descr is null;
        string descrText = narrow ? $"[('{t.Type.OnnxName()}', '{(t.Type.Storage() == StorageKind.Float ? "<f4" : "|i1")}')]" : $"'{descr}'";
        string header = $"{{'descr': {descrText}, 'fortran_order': False, 'shape': {shape}, }}";
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
            switch (narrow ? (t.Type.Storage() == StorageKind.Float ? DType.Float32 : DType.Int8) : t.Type)
            {
                case DType.Float16: BinaryPrimitives.WriteHalfLittleEndian(buf, (Half)t.Floats![i]); s.Write(buf[..2]); break;
                case DType.Float32: BinaryPrimitives.WriteSingleLittleEndian(buf, t.Floats![i]); s.Write(buf[..4]); break;
                case DType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(buf, t.Doubles![i]); s.Write(buf[..8]); break;
                case DType.Int16 or DType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(buf, (ushort)t.Longs![i]); s.Write(buf[..2]); break;
                case DType.Int32 or DType.UInt32: BinaryPrimitives.WriteUInt32LittleEndian(buf, (uint)t.Longs![i]); s.Write(buf[..4]); break;
                case DType.Int64 or DType.UInt64: BinaryPrimitives.WriteInt64LittleEndian(buf, t.Longs![i]); s.Write(buf[..8]); break;
                case DType.String:
                {
                    int k = 0;
                    foreach (var r in t.Strings![i].EnumerateRunes()) { BinaryPrimitives.WriteUInt32LittleEndian(buf, (uint)r.Value); s.Write(buf[..4]); k++; }
                    buf.Clear();
                    for (; k < stringChars; k++) s.Write(buf[..4]);
                    break;
                }
                default: s.WriteByte((byte)t.Longs![i]); break; // int8, uint8, bool
            }
        }
    }

    /// <summary>Reads every array of an .npz archive (stored or deflated), keyed by name without ".npy".</summary>
    public static Dictionary<string, Tensor> ReadNpz(string path) => ParseNpz(ReadBytes(path), path);

    /// <summary>
    /// Whether file bytes are an .npz archive (a zip: one .npy per array) rather than one .npy, judged by content
    /// because the sandbox stages a dataset under a name of its own.
    /// </summary>
    public static bool IsNpz(ReadOnlySpan<byte> bytes) => bytes.StartsWith("PK\x03\x04"u8) || bytes.StartsWith("PK\x05\x06"u8);

    /// <summary>The arrays of an .npz archive held in memory (the bytes that were digested), keyed by name without ".npy".</summary>
    public static Dictionary<string, Tensor> ParseNpz(byte[] bytes, string path)
    {
        try
        {
            using var zip = new ZipArchive(new MemoryStream(bytes, writable: false), ZipArchiveMode.Read);
            var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var e in zip.Entries)
            {
                if (!e.FullName.EndsWith(".npy", StringComparison.Ordinal)) continue;
                result[e.FullName[..^4]] = Parse(EntryBytes(e, path, MaxElements * 8), $"{path}:{e.FullName}");
            }
            if (result.Count == 0) throw new GateInputException($"{path}: the .npz archive holds no .npy arrays");
            return result;
        }
        catch (InvalidDataException e) { throw new GateInputException($"{path}: not a valid .npz archive: {e.Message}"); }
    }

    /// <summary>
    /// A sequence of tensors as NumPy's <c>np.savez(path, *arrays)</c> writes it: exactly the members arr_0.npy …
    /// arr_{n-1}.npy, nothing else (a member under another name would be silently dropped otherwise), all of them
    /// together no larger than one .npy may be (<see cref="MaxFileBytes"/>, however small the archive: a zip bomb).
    /// An archive with no members is the empty sequence.
    /// </summary>
    public static List<Tensor> ParseSequenceNpz(byte[] bytes, string path) => ParseSequenceNpz(bytes, path, MaxFileBytes);

    /// <param name="maxTotal">the cap on all members' bytes together (tests use a small one)</param>
    internal static List<Tensor> ParseSequenceNpz(byte[] bytes, string path, long maxTotal)
    {
        try
        {
            using var zip = new ZipArchive(new MemoryStream(bytes, writable: false), ZipArchiveMode.Read);
            var byIndex = new Dictionary<int, ZipArchiveEntry>();
            foreach (var e in zip.Entries)
            {
                var m = SequenceMemberRx().Match(e.FullName);
                if (!m.Success || !int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int i) || i >= zip.Entries.Count || !byIndex.TryAdd(i, e))
                    throw new GateInputException($"{path}: a sequence .npz holds exactly arr_0.npy, arr_1.npy, … (np.savez(path, *arrays)); '{SafeMember(e.FullName)}' is not one of them or appears twice");
            }
            var result = new List<Tensor>(byIndex.Count);
            long left = maxTotal;
            for (int i = 0; i < byIndex.Count; i++)
            {
                var e = byIndex[i];
                var npy = EntryBytes(e, path, left);
                left -= npy.Length;
                result.Add(Parse(npy, $"{path}:{e.FullName}"));
            }
            return result;
        }
        catch (InvalidDataException e) { throw new GateInputException($"{path}: not a valid .npz archive: {e.Message}"); }
    }

    /// <summary>
    /// One member's bytes, at most <paramref name="cap"/> of them (the declared length may lie: at most one byte past
    /// the cap is inflated). A member the archive marks as a symbolic link (or any other non-regular file) is refused:
    /// an extracting tool would follow it; its bytes are a path, not an array.
    /// </summary>
    private static byte[] EntryBytes(ZipArchiveEntry e, string path, long cap)
    {
        int unixType = (e.ExternalAttributes >> 16) & 0xF000;
        if (unixType != 0 && unixType != 0x8000)
            throw new GateInputException($"{path}:{SafeMember(e.FullName)}: not a regular file in the archive ({(unixType == 0xA000 ? "a symbolic link" : $"file type 0{Convert.ToString(unixType, 8)}")})");
        if (e.Length > cap) throw new GateInputException($"{path}:{SafeMember(e.FullName)}: entry too large");
        using var es = e.Open();
        using var ms = new MemoryStream();
        CopyCapped(es, ms, cap + 1);
        if (ms.Length > cap) throw new GateInputException($"{path}:{SafeMember(e.FullName)}: entry too large");
        return ms.ToArray();
    }

    /// <summary>A member name as messages print it: control characters (a terminal's escape sequences) as '?', bounded.</summary>
    private static string SafeMember(string name) => new(name.Take(120).Select(c => char.IsControl(c) ? '?' : c).ToArray());

    private static void CopyCapped(Stream from, Stream to, long cap)
    {
        var buf = new byte[81920];
        int read;
        while (to.Length < cap && (read = from.Read(buf, 0, (int)Math.Min(buf.Length, cap - to.Length))) > 0) to.Write(buf, 0, read);
    }

    /// <summary>
    /// An .npz of .npy files as they are (stored, fixed timestamps): the same files always give the same bytes, so
    /// the digest of a dataset composed from one file per input is reproducible.
    /// </summary>
    public static byte[] ComposeNpz(IEnumerable<(string Name, byte[] Npy)> arrays)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, npy) in arrays)
            {
                var entry = zip.CreateEntry(name + ".npy", CompressionLevel.NoCompression);
                entry.LastWriteTime = new DateTimeOffset(1980, 1, 1, 0, 0, 0, TimeSpan.Zero);
                using var es = entry.Open();
                es.Write(npy);
            }
        return ms.ToArray();
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

    [GeneratedRegex(@"^arr_(0|[1-9][0-9]{0,8})\.npy\z")] private static partial Regex SequenceMemberRx();
    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")] private static partial Regex DescrRx();
    [GeneratedRegex(@"'descr'\s*:\s*\[\s*\(\s*'([a-z0-9]+)'\s*,\s*'([^']*)'\s*\)\s*,?\s*\]")] private static partial Regex NarrowDescrRx();
    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")] private static partial Regex FortranRx();
    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")] private static partial Regex ShapeRx();
}
