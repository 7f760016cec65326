namespace Gate.Core.Tensors;

/// <summary>
/// The narrow floating formats ONNX defines (float16, bfloat16, the float8 family, float4 e2m1, e8m0): decoding
/// bit patterns, and rounding float32 values to the nearest representable value (ties to even), which is how
/// <see cref="Tensor"/> holds them. The 8- and 4-bit formats are decoded from a table of all their codes; rounding
/// searches that table, which is exact by construction and needs no per-format bit tricks.
/// </summary>
public static class NarrowFloats
{
    private sealed class Format
    {
        public required float[] Decode;          // value of every code (NaN where the code is NaN)
        public required float[] Positive;        // finite non-negative values, ascending
        public required int[] PositiveCodes;     // their codes
        public required bool HasInfinity;        // E5M2: overflow without saturation gives ±inf, else NaN
        public required bool HasNegativeZero;
        public required int SignBit;
        public required bool HasNaN;
        public float Max => Positive[^1];
    }

    private static Format Build(int bits, Func<int, float> decode, bool hasInf, bool negZero)
    {
        int n = 1 << bits, sign = 1 << (bits - 1);
        var dec = new float[n];
        for (int c = 0; c < n; c++) dec[c] = decode(c);
        var pos = Enumerable.Range(0, sign).Where(c => float.IsFinite(dec[c])).OrderBy(c => dec[c]).ToArray();
        return new Format { Decode = dec, Positive = pos.Select(c => dec[c]).ToArray(), PositiveCodes = pos, HasInfinity = hasInf, HasNegativeZero = negZero, SignBit = sign, HasNaN = dec.Any(float.IsNaN) };
    }

    /// <summary>Generic minifloat: sign, e exponent bits, m mantissa bits, bias; NaN/inf rules per format.</summary>
    private static float Mini(int code, int e, int m, int bias, Func<int, int, int, float?> special)
    {
        int s = code >> (e + m), ex = (code >> m) & ((1 << e) - 1), man = code & ((1 << m) - 1);
        var sp = special(s, ex, man);
        if (sp is float v) return v;
        double mag = ex == 0 ? man / (double)(1 << m) * Math.Pow(2, 1 - bias) : (1 + man / (double)(1 << m)) * Math.Pow(2, ex - bias);
        return (float)(s == 1 ? -mag : mag);
    }

    private static readonly Dictionary<DType, Format> Formats = new()
    {
        [DType.Float8E4M3FN] = Build(8, c => Mini(c, 4, 3, 7, (s, e, m) => e == 15 && m == 7 ? float.NaN : null), false, true),
        [DType.Float8E4M3FNUZ] = Build(8, c => Mini(c, 4, 3, 8, (s, e, m) => c == 0x80 ? float.NaN : null), false, false),
        [DType.Float8E5M2] = Build(8, c => Mini(c, 5, 2, 15, (s, e, m) => e == 31 ? (m == 0 ? (s == 1 ? float.NegativeInfinity : float.PositiveInfinity) : float.NaN) : null), true, true),
        [DType.Float8E5M2FNUZ] = Build(8, c => Mini(c, 5, 2, 16, (s, e, m) => c == 0x80 ? float.NaN : null), false, false),
        [DType.Float4E2M1] = Build(4, c => Mini(c, 2, 1, 1, (s, e, m) => null), false, true),
    };

    public static bool IsTableFormat(DType t) => Formats.ContainsKey(t);

    /// <summary>Value of one code of a table format (float8 family, float4) or of float8e8m0.</summary>
    public static float Decode(DType t, int code)
    {
        if (t == DType.Float8E8M0) return code == 0xFF ? float.NaN : (float)Math.Pow(2, code - 127);
        return Formats[t].Decode[code];
    }

    /// <summary>
    /// The code of a value already representable in <paramref name="t"/> (a table format or float8e8m0): the inverse
    /// of <see cref="Decode"/>, for writing the type's bit pattern (e.g. to ONNX Runtime).
    /// </summary>
    public static int Encode(DType t, float v)
    {
        if (t == DType.Float8E8M0) return float.IsNaN(v) ? 0xFF : Math.Clamp(Math.ILogB(v) + 127, 0, 0xFE);
        var f = Formats[t];
        int bits = BitConverter.SingleToInt32Bits(v);
        int nan = -1, equal = -1;
        for (int c = 0; c < f.Decode.Length; c++)
        {
            float d = f.Decode[c];
            if (BitConverter.SingleToInt32Bits(d) == bits) return c;
            if (float.IsNaN(d) && nan < 0) nan = c;
            if (d == v && equal < 0) equal = c; // -0 in a format without negative zero
        }
        if (float.IsNaN(v) && nan >= 0) return nan;
        if (equal >= 0) return equal;
        throw new ArgumentException($"{v:R} is not a {t.OnnxName()} value");
    }

    /// <summary>Rounds each value to <paramref name="t"/> in place (no-op for float32) and returns the array.</summary>
    public static float[] Round(float[] v, DType t, bool saturate = true, string e8m0Mode = "up")
    {
        switch (t)
        {
            case DType.Float32: return v;
            case DType.Float16: for (int i = 0; i < v.Length; i++) v[i] = (float)(Half)v[i]; return v;
            case DType.BFloat16: for (int i = 0; i < v.Length; i++) v[i] = ToBFloat16(v[i]); return v;
            case DType.Float8E8M0: for (int i = 0; i < v.Length; i++) v[i] = ToE8M0(v[i], e8m0Mode, saturate); return v;
        }
        var f = Formats.TryGetValue(t, out var ff) ? ff : throw new NotSupportedException($"{t} is not a narrow float");
        for (int i = 0; i < v.Length; i++) v[i] = RoundTo(f, v[i], saturate);
        return v;
    }

    private static float ToBFloat16(float x)
    {
        if (float.IsNaN(x)) return x;
        uint b = BitConverter.SingleToUInt32Bits(x);
        b += 0x7FFF + ((b >> 16) & 1);
        return BitConverter.UInt32BitsToSingle(b & 0xFFFF0000);
    }

    private static float ToE8M0(float x, string mode, bool saturate)
    {
        if (float.IsNaN(x) || x < 0) return float.NaN;
        if (float.IsPositiveInfinity(x)) return saturate ? (float)Math.Pow(2, 127) : float.NaN;
        uint b = BitConverter.SingleToUInt32Bits(x);
        int e = (int)((b >> 23) & 0xFF); uint m = b & 0x7FFFFF;
        if (mode == "up" && m != 0) e++;
        else if (mode == "nearest" && m >= 0x400000) e++;
        if (e > 254) return saturate ? (float)Math.Pow(2, 127) : float.NaN;
        return (float)Math.Pow(2, e - 127);
    }

    private static float RoundTo(Format f, float x, bool saturate)
    {
        // float4 e2m1 has no NaN code; the ONNX reference maps NaN to code 0b1000 (-0).
        if (float.IsNaN(x)) return f.HasNaN ? float.NaN : -0f;
        bool neg = x < 0 || (x == 0 && float.IsNegative(x));
        float a = Math.Abs(x);
        float r;
        if (float.IsInfinity(a)) r = saturate || !f.HasNaN ? f.Max : f.HasInfinity ? float.PositiveInfinity : float.NaN;
        else
        {
            var p = f.Positive;
            int hi = Array.BinarySearch(p, a);
            if (hi >= 0) r = p[hi];
            else
            {
                hi = ~hi;
                if (hi == p.Length)
                {
                    // Above the largest finite value: values within half a step still round down to it.
                    float step = p[^1] - p[^2];
                    bool roundsDown = a < p[^1] + step / 2 || (a == p[^1] + step / 2 && (f.PositiveCodes[^1] & 1) == 0);
                    r = roundsDown || saturate || !f.HasNaN ? f.Max : f.HasInfinity ? float.PositiveInfinity : float.NaN;
                }
                else
                {
                    float lo = p[hi - 1], up = p[hi];
                    double dl = a - (double)lo, du = up - (double)a;
                    r = dl < du ? lo : du < dl ? up : (f.PositiveCodes[hi - 1] & 1) == 0 ? lo : up;
                }
            }
        }
        if (neg && (r != 0 || f.HasNegativeZero)) r = -r;
        return r;
    }
}
