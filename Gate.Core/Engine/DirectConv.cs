using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Gate.Core.Engine;

/// <summary>
/// Direct 2-D convolution of one sample, vectorised over output channels: for a block of output pixels, each
/// (input channel, ky, kx) tap broadcasts one input value per pixel and multiply-adds a vector of weights into
/// register accumulators. Small planes (a digits CNN: 8×8 and 4×4) make im2col's many short row copies cost more
/// than the arithmetic; here the only copy is one zero-padded image per sample, so padding needs no tests in the
/// inner loop. Used with one group when each output row is exactly one vector wide at stride 1 (then vectorised
/// along the row instead, e.g. the 8×8 first layer and its single-channel input gradient), or else when the output
/// channel count is a multiple of the vector width.
/// </summary>
internal sealed class DirectConv
{
    private static int VL => Vector<float>.Count;

    public static bool Supports(int outChannels, int groups, int strideX, int outWidth) =>
        groups == 1 && (outChannels % Vector<float>.Count == 0 || (strideX == 1 && outWidth == Vector<float>.Count));

    private readonly int _c, _h, _w, _m, _oh, _ow, _padTop, _padLeft, _ph, _pw, _sy, _sx;
    private readonly int[] _tapOffsets;   // per tap (c, ky, kx): its offset in the padded image
    private readonly int[] _pixelBases;   // per output pixel (oy, ox): its window's top-left in the padded image

    /// <param name="c">input channels</param><param name="h">input height</param><param name="w">input width</param>
    /// <param name="m">output channels (a multiple of the vector width)</param>
    public DirectConv(int c, int h, int w, int m, int kh, int kw, int sy, int sx, int dy, int dx, int padTop, int padLeft, int oh, int ow)
    {
        if (m % VL != 0 && !(sx == 1 && ow == VL)) throw new ArgumentException("DirectConv: neither the output channels nor the output rows fill whole vectors", nameof(m));
        (_c, _h, _w, _m, _oh, _ow, _padTop, _padLeft, _sy, _sx) = (c, h, w, m, oh, ow, padTop, padLeft, sy, sx);
        // Only the rows and columns some window reaches are materialised.
        _ph = (oh - 1) * sy + (kh - 1) * dy + 1;
        _pw = (ow - 1) * sx + (kw - 1) * dx + 1;
        _tapOffsets = new int[c * kh * kw];
        for (int ch = 0, t = 0; ch < c; ch++)
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++) _tapOffsets[t++] = (ch * _ph + ky * dy) * _pw + kx * dx;
        _pixelBases = new int[oh * ow];
        for (int oy = 0, p = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) _pixelBases[p++] = oy * sy * _pw + ox * sx;
    }

    public int Taps => _tapOffsets.Length;
    private int PaddedLength => _c * _ph * _pw;
    private bool ByRows => _sx == 1 && _ow == VL;

    /// <summary>Floats of scratch <see cref="Sample"/> needs: the padded image, then (channel-vectorised) a [pixels, M] output tile.</summary>
    public int ScratchLength => PaddedLength + (ByRows ? 0 : _oh * _ow * _m);

    /// <summary>
    /// y[m, p] (+ bias[m]) = Σ_t wT[t, m] · padded(x)[offset_t + base_p] for one sample. <paramref name="wT"/> is the
    /// weight matrix as [taps, M]; <paramref name="scratch"/> holds <see cref="ScratchLength"/> floats, zeroed by
    /// <see cref="ClearPad"/> before the first sample.
    /// </summary>
    public void Sample(ReadOnlySpan<float> x, ReadOnlySpan<float> wT, ReadOnlySpan<float> bias, Span<float> y, Span<float> scratch)
    {
        if (x.Length < _c * _h * _w || wT.Length < Taps * _m || y.Length < _m * _oh * _ow || scratch.Length < ScratchLength || (!bias.IsEmpty && bias.Length < _m))
            throw new ArgumentException("DirectConv: buffer sizes do not match the plan");
        var pad = scratch[..PaddedLength];
        FillInterior(x, pad);
        // Rows of exactly one vector are preferred even when the channels would also fit: results are stored whole.
        if (ByRows)
        {
            for (int m = 0; m < _m; m++) RowVectors(wT, bias, y, pad, m);
            return;
        }
        // Channel vectors land in a [pixels, M] tile (whole-vector stores), transposed into y's [M, pixels] at the end.
        int pixels = _oh * _ow, m0 = 0;
        var tile = scratch.Slice(PaddedLength, pixels * _m);
        for (; m0 + 2 * VL <= _m; m0 += 2 * VL)
        {
            int p = 0;
            for (; p + 4 <= pixels; p += 4) Block2x4(wT, bias, tile, pad, m0, p);
            for (; p < pixels; p++) Single(wT, bias, tile, pad, m0, p);
            for (p = pixels - pixels % 4; p < pixels; p++) Single(wT, bias, tile, pad, m0 + VL, p);
        }
        if (m0 < _m)
        {
            int p = 0;
            for (; p + 8 <= pixels; p += 8) Block1x8(wT, bias, tile, pad, m0, p);
            for (; p < pixels; p++) Single(wT, bias, tile, pad, m0, p);
        }
        for (int m = 0; m < _m; m++)
        {
            var row = y.Slice(m * pixels, pixels);
            for (int p = 0; p < pixels; p++) row[p] = tile[p * _m + m];
        }
    }

    /// <summary>
    /// Zeroes a scratch buffer for <see cref="Sample"/>. Every sample then writes only the interior, the same cells
    /// each time, so the zero border survives and one buffer serves a whole run of samples.
    /// </summary>
    public void ClearPad(Span<float> scratch) => scratch[..PaddedLength].Clear();

    private void FillInterior(ReadOnlySpan<float> x, Span<float> pad)
    {
        int r0 = Math.Max(0, _padTop), r1 = Math.Min(_ph, _padTop + _h);
        int q0 = Math.Clamp(_padLeft, 0, _pw), q1 = Math.Clamp(_padLeft + _w, q0, _pw), run = q1 - q0;
        if (run <= 0) return;
        for (int ch = 0; ch < _c; ch++)
            for (int r = r0; r < r1; r++)
            {
                var src = x.Slice((ch * _h + r - _padTop) * _w + q0 - _padLeft, run);
                var dst = pad.Slice((ch * _ph + r) * _pw + q0, run);
                // Rows are short (4 to 8 floats in a digits CNN): whole vectors, then single floats.
                int q = 0;
                for (; q + VL <= run; q += VL) Vector.LoadUnsafe(ref MemoryMarshal.GetReference(src), (nuint)q).StoreUnsafe(ref MemoryMarshal.GetReference(dst), (nuint)q);
                for (; q < run; q++) dst[q] = src[q];
            }
    }

    private Vector<float> Init(ReadOnlySpan<float> bias, int m) =>
        bias.IsEmpty ? Vector<float>.Zero : Vector.LoadUnsafe(ref MemoryMarshal.GetReference(bias), (nuint)m);

    /// <summary>Stores output channels [m, m+VL) of pixel p into the [pixels, M] tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Put(Vector<float> v, Span<float> tile, int m, int p) => v.StoreUnsafe(ref MemoryMarshal.GetReference(tile.Slice(p * _m + m, Vector<float>.Count)));

    private void Block2x4(ReadOnlySpan<float> wT, ReadOnlySpan<float> bias, Span<float> tile, ReadOnlySpan<float> pad, int m0, int p)
    {
        ref float rw = ref MemoryMarshal.GetReference(wT);
        ref float rp = ref MemoryMarshal.GetReference(pad);
        ref int offs = ref MemoryArrayRef(_tapOffsets);
        int b0 = _pixelBases[p], b1 = _pixelBases[p + 1], b2 = _pixelBases[p + 2], b3 = _pixelBases[p + 3];
        Vector<float> i0 = Init(bias, m0), i1 = Init(bias, m0 + VL);
        Vector<float> a00 = i0, a01 = i1, a10 = i0, a11 = i1, a20 = i0, a21 = i1, a30 = i0, a31 = i1;
        for (int t = 0; t < _tapOffsets.Length; t++)
        {
            ref float wv = ref Unsafe.Add(ref rw, t * _m + m0);
            var w0 = Vector.LoadUnsafe(ref wv); var w1 = Vector.LoadUnsafe(ref wv, (nuint)VL);
            ref float px = ref Unsafe.Add(ref rp, Unsafe.Add(ref offs, t));
            var x0 = new Vector<float>(Unsafe.Add(ref px, b0));
            var x1 = new Vector<float>(Unsafe.Add(ref px, b1));
            var x2 = new Vector<float>(Unsafe.Add(ref px, b2));
            var x3 = new Vector<float>(Unsafe.Add(ref px, b3));
            a00 = Vector.FusedMultiplyAdd(x0, w0, a00); a01 = Vector.FusedMultiplyAdd(x0, w1, a01);
            a10 = Vector.FusedMultiplyAdd(x1, w0, a10); a11 = Vector.FusedMultiplyAdd(x1, w1, a11);
            a20 = Vector.FusedMultiplyAdd(x2, w0, a20); a21 = Vector.FusedMultiplyAdd(x2, w1, a21);
            a30 = Vector.FusedMultiplyAdd(x3, w0, a30); a31 = Vector.FusedMultiplyAdd(x3, w1, a31);
        }
        Put(a00, tile, m0, p); Put(a01, tile, m0 + VL, p);
        Put(a10, tile, m0, p + 1); Put(a11, tile, m0 + VL, p + 1);
        Put(a20, tile, m0, p + 2); Put(a21, tile, m0 + VL, p + 2);
        Put(a30, tile, m0, p + 3); Put(a31, tile, m0 + VL, p + 3);
    }

    private void Block1x8(ReadOnlySpan<float> wT, ReadOnlySpan<float> bias, Span<float> tile, ReadOnlySpan<float> pad, int m0, int p)
    {
        ref float rw = ref MemoryMarshal.GetReference(wT);
        ref float rp = ref MemoryMarshal.GetReference(pad);
        ref int offs = ref MemoryArrayRef(_tapOffsets);
        ref int bases = ref Unsafe.Add(ref MemoryArrayRef(_pixelBases), p);
        int b0 = bases, b1 = Unsafe.Add(ref bases, 1), b2 = Unsafe.Add(ref bases, 2), b3 = Unsafe.Add(ref bases, 3);
        int b4 = Unsafe.Add(ref bases, 4), b5 = Unsafe.Add(ref bases, 5), b6 = Unsafe.Add(ref bases, 6), b7 = Unsafe.Add(ref bases, 7);
        Vector<float> a0 = Init(bias, m0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int t = 0; t < _tapOffsets.Length; t++)
        {
            var w0 = Vector.LoadUnsafe(ref Unsafe.Add(ref rw, t * _m + m0));
            ref float px = ref Unsafe.Add(ref rp, Unsafe.Add(ref offs, t));
            a0 = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref px, b0)), w0, a0);
            a1 = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref px, b1)), w0, a1);
            a2 = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref px, b2)), w0, a2);
            a3 = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref px, b3)), w0, a3);
            a4 = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref px, b4)), w0, a4);
            a5 = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref px, b5)), w0, a5);
            a6 = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref px, b6)), w0, a6);
            a7 = Vector.FusedMultiplyAdd(new Vector<float>(Unsafe.Add(ref px, b7)), w0, a7);
        }
        Put(a0, tile, m0, p); Put(a1, tile, m0, p + 1); Put(a2, tile, m0, p + 2); Put(a3, tile, m0, p + 3);
        Put(a4, tile, m0, p + 4); Put(a5, tile, m0, p + 5); Put(a6, tile, m0, p + 6); Put(a7, tile, m0, p + 7);
    }

    /// <summary>
    /// Output channel m, one vector per output row (stride 1, OW = vector width): each tap multiplies a contiguous
    /// run of the padded image by one broadcast weight; eight rows at a time in registers.
    /// </summary>
    private void RowVectors(ReadOnlySpan<float> wT, ReadOnlySpan<float> bias, Span<float> y, ReadOnlySpan<float> pad, int m)
    {
        ref float rw = ref MemoryMarshal.GetReference(wT);
        ref float rp = ref MemoryMarshal.GetReference(pad);
        ref int offs = ref MemoryArrayRef(_tapOffsets);
        ref float ry = ref MemoryMarshal.GetReference(y);
        var init = new Vector<float>(bias.IsEmpty ? 0f : bias[m]);
        int rowStep = _sy * _pw, oy = 0;
        for (; oy + 8 <= _oh; oy += 8)
        {
            Vector<float> a0 = init, a1 = init, a2 = init, a3 = init, a4 = init, a5 = init, a6 = init, a7 = init;
            int rb = oy * rowStep;
            for (int t = 0; t < _tapOffsets.Length; t++)
            {
                var wv = new Vector<float>(Unsafe.Add(ref rw, t * _m + m));
                ref float px = ref Unsafe.Add(ref rp, Unsafe.Add(ref offs, t) + rb);
                a0 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref px), wv, a0);
                a1 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref px, (nuint)rowStep), wv, a1);
                a2 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref px, (nuint)(2 * rowStep)), wv, a2);
                a3 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref px, (nuint)(3 * rowStep)), wv, a3);
                a4 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref px, (nuint)(4 * rowStep)), wv, a4);
                a5 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref px, (nuint)(5 * rowStep)), wv, a5);
                a6 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref px, (nuint)(6 * rowStep)), wv, a6);
                a7 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref px, (nuint)(7 * rowStep)), wv, a7);
            }
            ref float yo = ref Unsafe.Add(ref ry, (m * _oh + oy) * _ow);
            a0.StoreUnsafe(ref yo); a1.StoreUnsafe(ref yo, (nuint)_ow); a2.StoreUnsafe(ref yo, (nuint)(2 * _ow)); a3.StoreUnsafe(ref yo, (nuint)(3 * _ow));
            a4.StoreUnsafe(ref yo, (nuint)(4 * _ow)); a5.StoreUnsafe(ref yo, (nuint)(5 * _ow)); a6.StoreUnsafe(ref yo, (nuint)(6 * _ow)); a7.StoreUnsafe(ref yo, (nuint)(7 * _ow));
        }
        for (; oy < _oh; oy++)
        {
            var a = init;
            for (int t = 0; t < _tapOffsets.Length; t++)
                a = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref Unsafe.Add(ref rp, Unsafe.Add(ref offs, t) + oy * rowStep)), new Vector<float>(Unsafe.Add(ref rw, t * _m + m)), a);
            a.StoreUnsafe(ref Unsafe.Add(ref ry, (m * _oh + oy) * _ow));
        }
    }

    private void Single(ReadOnlySpan<float> wT, ReadOnlySpan<float> bias, Span<float> tile, ReadOnlySpan<float> pad, int m0, int p)
    {
        int b = _pixelBases[p];
        var a = Init(bias, m0);
        for (int t = 0; t < _tapOffsets.Length; t++)
            a = Vector.FusedMultiplyAdd(new Vector<float>(pad[_tapOffsets[t] + b]), Vector.LoadUnsafe(ref MemoryMarshal.GetReference(wT), (nuint)(t * _m + m0)), a);
        Put(a, tile, m0, p);
    }

    private static ref int MemoryArrayRef(int[] a) => ref MemoryMarshal.GetArrayDataReference(a);
}
