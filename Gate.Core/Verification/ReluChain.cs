using System.Numerics;
using Gate.Core.Engine.Bounds;
using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Core.Verification;

/// <summary>
/// A plain feed-forward ReLU network (dense layers, biases, ReLUs, reshapes; ACAS Xu and mnist_fc have this
/// shape) recognised in the IR, with bounds computed for a whole batch of input sub-boxes at once — the workhorse
/// of input-split branch and bound. Intermediate bounds come from forward symbolic propagation (each neuron
/// carries a lower and an upper linear function of the input, DeepPoly/Neurify style; for a batch the step through
/// a dense layer is one product of the shared weight matrix with every sub-box's coefficients side by side);
/// the specification rows are then bounded by a CROWN backward pass over those intermediate bounds.
///
/// Soundness in floating point: every quantity is computed in float64 for the real-valued network whose weights
/// are the model's float32 weights. The coefficients of a symbolic bound, or the CROWN coefficients, that come out
/// of a sum of n products differ from the exact ones by at most γ(n)·Σ|terms| (Higham §3.1); evaluated anywhere on
/// the box that moves the bound by at most γ(n)·Σ|terms|·|value|, which is computed alongside (one extra product
/// with |W| per layer) and pushed outward. ReLU upper slopes are rounded up (a steeper chord through (l, 0) is still
/// above the ReLU on [l, u]); lower slopes are 0 or 1 (exact). The float32 execution of the model is covered by a
/// forward error bound per sub-box (see <see cref="Bound"/>), small because the sub-box's own magnitudes are used.
/// </summary>
public sealed partial class ReluChain
{
    private sealed record Layer(double[] W, double[] B, int In, int Out, bool Relu);

    private readonly Layer[] _layers;
    /// <summary>x' = x + Shift is what the first dense layer sees (input normalisation by Sub/Add constants).</summary>
    private readonly double[] _shift;

    public int InputSize { get; }
    public int OutputSize { get; }
    public int Depth => _layers.Length;

    private ReluChain(Layer[] layers, double[] shift)
    {
        _layers = layers; _shift = shift;
        InputSize = shift.Length; OutputSize = layers[^1].Out;
    }

    /// <summary>The chain of <paramref name="model"/>, or null when its graph is anything else (the general
    /// bound propagator then handles it).</summary>
    public static ReluChain? TryBuild(OnnxModel model)
    {
        var g = model.Graph;
        if (g.Inputs.Count != 1 || g.Outputs.Count < 1 || g.Inputs[0].Shape is null) return null;
        int width = (int)Math.Min(int.MaxValue, g.Inputs[0].Shape!.Select(d => d.Value ?? 1).Aggregate(1L, (a, b) => a * b));
        if (width <= 0) return null;
        var shift = new double[width];
        var layers = new List<Layer>();
        string current = g.Inputs[0].Name;
        bool open = false; // the last layer may still take a bias
        bool shifted = false;
        double[]? Const(string name) => g.Initializers.TryGetValue(name, out var t) && t.Type.IsFloating() ? t.ToDoubleArray() : null;
        int[]? ConstShape(string name) => g.Initializers.TryGetValue(name, out var t) ? t.Shape : null;
        // The current tensor must be a row vector (every dimension 1 but the last) wherever broadcasting or a
        // product could mix its elements differently from a flat vector; null = a shape not tracked here.
        int[]? shape = g.Inputs[0].Shape!.Select(d => (int)(d.Value ?? 1)).ToArray();
        bool RowVector(int[]? sh) => sh is { Length: > 0 } && sh[^1] == width && sh.Take(sh.Length - 1).All(v => v == 1);
        // A constant operand that broadcasts element by element onto a row vector: all ones but the last, which is
        // the width or 1.
        bool RowConstant(int[]? sh) => sh is not null && sh.Take(Math.Max(0, sh.Length - 1)).All(v => v == 1) && (sh.Length == 0 || sh[^1] == width || sh[^1] == 1);
        foreach (var node in g.Nodes)
        {
            if (!node.Inputs.Contains(current)) return null; // a branch or a second path: not a chain
            if (node.Outputs.Length < 1 || (node.Domain != "" && node.Domain != "ai.onnx")) return null;
            switch (node.OpType)
            {
                case "Identity":
                    break;
                case "Flatten":
                {
                    if (node.Inputs[0] != current || shape is null) return null;
                    int axis = (int)node.GetInt("axis", 1);
                    if (axis < 0) axis += shape.Length;
                    if (axis < 0 || axis > shape.Length) return null;
                    long outer = shape.Take(axis).Aggregate(1L, (a, b) => a * b);
                    shape = [(int)outer, (int)(width / Math.Max(1, outer))];
                    break;
                }
                case "Reshape" or "Squeeze" or "Unsqueeze":
                    if (node.Inputs[0] != current) return null;
                    shape = null; // element order is kept; the new shape is not tracked
                    break;
                case "Relu":
                    if (layers.Count == 0 || layers[^1].Relu) return null;
                    layers[^1] = layers[^1] with { Relu = true };
                    open = false;
                    break;
                case "MatMul" or "Gemm":
                {
                    if (node.Inputs[0] != current || node.Inputs.Length < 2 || !RowVector(shape)) return null;
                    if (node.OpType == "Gemm" && shape!.Length != 2) return null;
                    var w = Const(node.Inputs[1]); var ws = ConstShape(node.Inputs[1]);
                    if (w is null || ws is not { Length: 2 }) return null;
                    bool transB = node.OpType == "Gemm" && node.GetInt("transB", 0) != 0;
                    if (node.OpType == "Gemm" && (node.GetInt("transA", 0) != 0 || node.GetFloat("alpha", 1) != 1 || node.GetFloat("beta", 1) != 1)) return null;
                    int k = transB ? ws[1] : ws[0], n = transB ? ws[0] : ws[1];
                    if (k != width) return null;
                    var wt = new double[n * k]; // out × in
                    for (int i = 0; i < n; i++) for (int p = 0; p < k; p++) wt[i * k + p] = transB ? w[i * k + p] : w[p * n + i];
                    var b = new double[n];
                    if (node.OpType == "Gemm" && node.Inputs.Length > 2 && node.Inputs[2].Length > 0)
                    {
                        var c = Const(node.Inputs[2]);
                        var cs = ConstShape(node.Inputs[2]);
                        if (c is null || !(c.Length == n || c.Length == 1) || cs is null || cs.Take(Math.Max(0, cs.Length - 1)).Any(v => v != 1)) return null;
                        for (int i = 0; i < n; i++) b[i] = c[c.Length == 1 ? 0 : i];
                    }
                    layers.Add(new Layer(wt, b, k, n, false));
                    width = n; open = node.OpType == "MatMul";
                    shape = [.. shape!.Take(shape!.Length - 1), n];
                    break;
                }
                case "Add" or "Sub":
                {
                    int vi = node.Inputs[0] == current ? 0 : 1;
                    if (node.Inputs.Length != 2 || node.Inputs[1 - vi] == current) return null;
                    if (node.OpType == "Sub" && vi != 0) return null;
                    var c = Const(node.Inputs[1 - vi]);
                    var cs = ConstShape(node.Inputs[1 - vi]);
                    if (c is null || !(c.Length == width || c.Length == 1) || !RowVector(shape) || !RowConstant(cs)) return null;
                    if (cs!.Length > shape!.Length) shape = [.. Enumerable.Repeat(1, cs.Length - shape.Length), .. shape];
                    double sign = node.OpType == "Sub" ? -1 : 1;
                    if (layers.Count == 0)
                    {
                        // Before the first dense layer: a shift of the input box (applied outward, once: two shifts
                        // would be summed inexactly).
                        if (shifted) return null;
                        for (int i = 0; i < width; i++) shift[i] = sign * c[c.Length == 1 ? 0 : i];
                        shifted = true;
                        break;
                    }
                    if (!open) return null; // a bias after a ReLU or a second bias: not handled here
                    var last = layers[^1];
                    for (int i = 0; i < width; i++) last.B[i] += sign * c[c.Length == 1 ? 0 : i];
                    open = false;
                    break;
                }
                default: return null;
            }
            current = node.Outputs[0];
        }
        if (layers.Count == 0 || current != g.Outputs[0].Name || layers[^1].Relu) return null;
        return new ReluChain(layers.ToArray(), shift);
    }

    private const double U = 1.0 / (1L << 53), U32 = 1.0 / (1 << 24);
    private static double Gamma32(int n) { double t = n * U32; return t / (1 - t) * 1.0000001; }
    private static double Gamma(int n) => Outward.Gamma(n);

    /// <summary>Result of bounding a batch: per sub-box and specification row, a sound lower bound and the
    /// input coefficients of the final linear bound (for choosing a split and an attack point).</summary>
    public sealed record BatchBounds(double[] Lower, double[] InputLambda);

    /// <summary>
    /// Lower bounds of C·y − d over each of <paramref name="count"/> boxes, for the model as it runs in float32 (<paramref name="lower"/>/<paramref name="upper"/>: count × InputSize,
    /// in the model's own input coordinates). Returns count × rows bounds and count × rows × InputSize coefficients.
    /// </summary>
    public BatchBounds Bound(int count, double[] lower, double[] upper, double[] c, double[] d) => Bound(count, lower, upper, c, d, null);

    /// <summary><see cref="Bound(int, double[], double[], double[], double[])"/>, also leaving box 0's intermediate
    /// bounds and float32 row errors in <paramref name="capture"/> (the root of ReLU-split branch and bound).</summary>
    private BatchBounds Bound(int count, double[] lower, double[] upper, double[] c, double[] d, BoxState? capture)
    {
        int n0 = InputSize, cols = n0 + 1, rows = d.Length;
        // Shifted boxes, rounded outward.
        var xl = new double[count * n0]; var xu = new double[count * n0]; var xmag = new double[count * cols];
        for (int b = 0; b < count; b++)
        {
            for (int j = 0; j < n0; j++)
            {
                double s = _shift[j];
                double l = lower[b * n0 + j] + s, u = upper[b * n0 + j] + s;
                if (s != 0) { l = Math.BitDecrement(l); u = Math.BitIncrement(u); }
                xl[b * n0 + j] = l; xu[b * n0 + j] = u;
                xmag[b * cols + j] = Math.Max(Math.Abs(l), Math.Abs(u));
            }
            xmag[b * cols + n0] = 1;
        }

        // Forward symbolic pass. Row p of lo/up holds neuron p's linear function for every box: count × cols.
        int width = n0, stride = count * cols;
        var lo = new double[width * stride]; var up = new double[width * stride];
        for (int p = 0; p < n0; p++) for (int b = 0; b < count; b++) { lo[p * stride + b * cols + p] = 1; up[p * stride + b * cols + p] = 1; }
        var al = xl.ToArray(); var au = xu.ToArray(); // interval bounds of the current activations, count × width
        var zLower = new double[_layers.Length][]; var zUpper = new double[_layers.Length][];
        var aMag = new double[_layers.Length + 1][];
        aMag[0] = new double[count * n0];
        for (int i = 0; i < aMag[0].Length; i++) aMag[0][i] = Math.Max(Math.Abs(xl[i]), Math.Abs(xu[i]));
        var wa = new double[_layers.Length][]; // |W|·|a| per layer and box: the rounding allowance of Λ·W
        int maxW = _layers.Max(l => Math.Max(l.In, l.Out));
        var lam = new double[maxW]; var next = new double[maxW];
        for (int k = 0; k < _layers.Length - 1; k++)
        {
            var L = _layers[k];
            wa[k] = AbsProduct(L, aMag[k], count);
            // Magnitude Σ_c (|lo|+|up|)·|x_c| of each source neuron's functions, per box.
            var m = new double[width * count];
            for (int p = 0; p < width; p++)
                for (int b = 0; b < count; b++)
                {
                    double s = 0; int o = p * stride + b * cols;
                    for (int q = 0; q < cols; q++) s += (Math.Abs(lo[o + q]) + Math.Abs(up[o + q])) * xmag[b * cols + q];
                    m[p * count + b] = s;
                }
            var nlo = new double[L.Out * stride]; var nup = new double[L.Out * stride];
            var err = new double[L.Out * count];
            var zl = new double[count * L.Out]; var zu = new double[count * L.Out];
            double g = Gamma(L.In + 2);
            for (int i = 0; i < L.Out; i++)
            {
                var rl = nlo.AsSpan(i * stride, stride); var ru = nup.AsSpan(i * stride, stride);
                var e = err.AsSpan(i * count, count);
                for (int p = 0; p < L.In; p++)
                {
                    double w = L.W[i * L.In + p];
                    if (w == 0) continue;
                    var sl = lo.AsSpan(p * stride, stride); var su = up.AsSpan(p * stride, stride);
                    if (w > 0) { Axpy(w, sl, rl); Axpy(w, su, ru); } else { Axpy(w, su, rl); Axpy(w, sl, ru); }
                    Axpy(Math.Abs(w), m.AsSpan(p * count, count), e);
                }
                double bi = L.B[i];
                for (int b = 0; b < count; b++)
                {
                    rl[b * cols + n0] += bi; ru[b * cols + n0] += bi;
                    double eb = g * (e[b] + Math.Abs(bi)) * (1 + 1e-9);
                    var (l1, _) = Concretise(rl.Slice(b * cols, cols), xl.AsSpan(b * n0, n0), xu.AsSpan(b * n0, n0), -eb);
                    var (_, u1) = Concretise(ru.Slice(b * cols, cols), xl.AsSpan(b * n0, n0), xu.AsSpan(b * n0, n0), eb);
                    // The lower/upper functions are themselves only valid up to eb: move their constants outward.
                    rl[b * cols + n0] = Outward.Down(rl[b * cols + n0] - eb, Math.Abs(rl[b * cols + n0]) + eb, 1);
                    ru[b * cols + n0] = Outward.Up(ru[b * cols + n0] + eb, Math.Abs(ru[b * cols + n0]) + eb, 1);
                    // Interval bound from the previous layer's intervals, intersected.
                    double cen = bi, rad = 0, mag = Math.Abs(bi);
                    for (int p = 0; p < L.In; p++)
                    {
                        double w = L.W[i * L.In + p]; if (w == 0) continue;
                        double l = al[b * width + p], u = au[b * width + p];
                        double xc = 0.5 * l + 0.5 * u, xr = Math.Max(u - xc, xc - l);
                        cen += xc * w; rad += xr * Math.Abs(w); mag += (Math.Abs(xc) + xr) * Math.Abs(w);
                    }
                    double il = Outward.Down(cen - rad, mag, L.In), iu = Outward.Up(cen + rad, mag, L.In);
                    zl[b * L.Out + i] = Math.Max(l1, il); zu[b * L.Out + i] = Math.Min(u1, iu);
                }
            }
            zLower[k] = zl; zUpper[k] = zu;
            // Tighten the unstable neurons by a CROWN backward pass to the input (the forward functions lose
            // precision with depth; the backward pass relaxes each earlier ReLU for this neuron's own coefficients).
            if (k > 0 && L.Relu)
                for (int b = 0; b < count; b++)
                    for (int i = 0; i < L.Out; i++)
                    {
                        int at = b * L.Out + i;
                        if (!(zl[at] < 0 && zu[at] > 0)) continue;
                        Array.Clear(lam); lam[i] = 1;
                        zl[at] = Math.Max(zl[at], BackLower(b, k, 0, lam, next, zLower, zUpper, wa, xl, xu));
                        Array.Clear(lam); lam[i] = -1;
                        zu[at] = Math.Min(zu[at], -BackLower(b, k, 0, lam, next, zLower, zUpper, wa, xl, xu));
                    }
            // Activation: ReLU relaxation of the functions (or the identity for a linear layer).
            var nal = new double[count * L.Out]; var nau = new double[count * L.Out];
            var amag = new double[count * L.Out];
            for (int i = 0; i < L.Out; i++)
                for (int b = 0; b < count; b++)
                {
                    double l = zl[b * L.Out + i], u = zu[b * L.Out + i];
                    var fl = nlo.AsSpan(i * stride + b * cols, cols); var fu = nup.AsSpan(i * stride + b * cols, cols);
                    if (!L.Relu || l >= 0)
                    {
                        nal[b * L.Out + i] = L.Relu ? Math.Max(0, l) : l; nau[b * L.Out + i] = u;
                    }
                    else if (u <= 0)
                    {
                        fl.Clear(); fu.Clear();
                        nal[b * L.Out + i] = 0; nau[b * L.Out + i] = 0;
                    }
                    else
                    {
                        double s = UpperSlope(l, u);
                        // upper: s·(f_u − l), with the rounding of the products pushed up.
                        double fm = 0;
                        for (int q = 0; q < cols; q++) fm += Math.Abs(fu[q]) * xmag[b * cols + q];
                        for (int q = 0; q < cols; q++) fu[q] *= s;
                        double c0 = fu[n0] - s * l;
                        fu[n0] = Outward.Up(c0, s * (fm + Math.Abs(l)) + Math.Abs(c0), 4);
                        if (u < -l) fl.Clear(); // lower slope 0, else 1 (unchanged)
                        nal[b * L.Out + i] = 0; nau[b * L.Out + i] = u;
                    }
                    amag[b * L.Out + i] = Math.Max(Math.Abs(nal[b * L.Out + i]), Math.Abs(nau[b * L.Out + i]));
                }
            lo = nlo; up = nup; al = nal; au = nau; width = L.Out;
            aMag[k + 1] = amag;
        }

        // CROWN backward from the specification rows, per box.
        var last = _layers[^1];
        wa[^1] = AbsProduct(last, aMag[_layers.Length - 1], count);
        if (capture is not null)
        {
            capture.Xl = xl.AsSpan(0, n0).ToArray(); capture.Xu = xu.AsSpan(0, n0).ToArray();
            capture.ZLower = zLower.Select(z => z is null ? null! : z.AsSpan(0, z.Length / count).ToArray()).ToArray();
            capture.ZUpper = zUpper.Select(z => z is null ? null! : z.AsSpan(0, z.Length / count).ToArray()).ToArray();
            capture.Wa = wa.Select((w, k) => w.AsSpan(0, _layers[k].Out).ToArray()).ToArray();
            capture.RowError = new double[rows];
        }
        var result = new double[count * rows];
        var inLambda = new double[count * rows * n0];
        for (int b = 0; b < count; b++)
        {
            // Float32 execution. Coarse: an error bound per neuron carried forward — a float32 dense layer (any
            // summation order, FMA or not) is within r = γ₃₂(n+2)·(|W|·|a₃₂| + |b|) of the exact layer on its float32
            // inputs, which differ from the exact activations by e, so the error grows to |W|·e + r; a ReLU is
            // 1-Lipschitz and exact, and outputs 0 in both runs where even z + e ≤ 0; the input shift (Sub) rounds
            // once. Fine: writing the float32 run as the exact one perturbed by δₖ (|δₖ| ≤ rₖ) after each layer,
            // y₃₂ − y = Σₖ (effect of δₖ) and |effect| ≤ |C|·|W_L|·D·…·|W_k+1|·D·rₖ with D = 0 on neurons inactive over
            // the region the float32 values can reach (exact bounds widened by the coarse error), 1 elsewhere.
            var eIn = new double[n0];
            for (int j = 0; j < n0; j++) eIn[j] = _shift[j] != 0 ? U32 * aMag[0][b * n0 + j] : 0;
            var eA = eIn;
            var eZ = new double[_layers.Length][]; var r32 = new double[_layers.Length][];
            var dead = new bool[_layers.Length][];
            for (int k = 0; k < _layers.Length; k++)
            {
                var L = _layers[k];
                eZ[k] = new double[L.Out]; r32[k] = new double[L.Out]; dead[k] = new bool[L.Out];
                var na = new double[L.Out];
                double g32 = Gamma32(L.In + 2);
                for (int i = 0; i < L.Out; i++)
                {
                    double prop = 0;
                    for (int p = 0; p < L.In; p++) prop += Math.Abs(L.W[i * L.In + p]) * eA[p];
                    r32[k][i] = g32 * (wa[k][b * L.Out + i] + prop + Math.Abs(L.B[i])) * (1 + 1e-9);
                    eZ[k][i] = (prop + r32[k][i]) * (1 + 1e-9);
                    dead[k][i] = L.Relu && zUpper[k][b * L.Out + i] + eZ[k][i] < 0;
                    na[i] = dead[k][i] ? 0 : eZ[k][i];
                }
                eA = na;
            }
            var rho = new double[maxW]; var rhoNext = new double[maxW];
            for (int r = 0; r < rows; r++)
            {
                double coarse = 0;
                for (int j = 0; j < last.Out; j++) { coarse += Math.Abs(c[r * last.Out + j]) * eZ[^1][j]; rho[j] = Math.Abs(c[r * last.Out + j]); }
                double fine = 0;
                for (int k = _layers.Length - 1; k >= 0; k--)
                {
                    var L = _layers[k];
                    for (int i = 0; i < L.Out; i++) fine += rho[i] * r32[k][i];
                    Array.Clear(rhoNext, 0, L.In);
                    for (int i = 0; i < L.Out; i++)
                        if (rho[i] != 0)
                            for (int p = 0; p < L.In; p++) rhoNext[p] += rho[i] * Math.Abs(L.W[i * L.In + p]);
                    for (int p = 0; p < L.In; p++) rho[p] = k > 0 && dead[k - 1][p] ? 0 : rhoNext[p];
                }
                for (int j = 0; j < n0; j++) fine += rho[j] * eIn[j];
                double rowError = Math.Min(coarse, fine) * 1.001 + 1e-300;
                double lb = AlphaLower(b, c.AsSpan(r * last.Out, last.Out), -d[r], lam, next, zLower, zUpper, wa, xl, xu, AlphaSteps);
                result[b * rows + r] = Outward.Down(lb - rowError, rowError + Math.Abs(lb), 2);
                if (capture is not null && b == 0) capture.RowError[r] = rowError;
                lam.AsSpan(0, n0).CopyTo(inLambda.AsSpan((b * rows + r) * n0, n0));
            }
        }
        return new BatchBounds(result, inLambda);
    }

    /// <summary>|W|·m per box for layer <paramref name="L"/>, m the magnitudes of its input (count × In).</summary>
    private static double[] AbsProduct(Layer L, double[] m, int count)
    {
        var v = new double[count * L.Out];
        for (int b = 0; b < count; b++)
            for (int i = 0; i < L.Out; i++)
            {
                double s = 0;
                for (int p = 0; p < L.In; p++) s += Math.Abs(L.W[i * L.In + p]) * m[b * L.In + p];
                v[b * L.Out + i] = s;
            }
        return v;
    }

    /// <summary>Projected-gradient steps on the ReLU lower slopes (α-CROWN) for each specification row's bound.</summary>
    public int AlphaSteps { get; set; } = 6;

    /// <summary>The same network with another <see cref="AlphaSteps"/> (the layers are shared: bounding only reads them).</summary>
    internal ReluChain WithAlphaSteps(int steps)
    {
        var copy = (ReluChain)MemberwiseClone();
        copy.AlphaSteps = steps;
        return copy;
    }

    /// <summary>
    /// α-CROWN for one specification row <paramref name="row"/> of box <paramref name="b"/>: the CROWN bound with
    /// the lower ReLU slopes α ∈ [0, 1] (one per unstable neuron; any value is sound) optimised by projected
    /// gradient ascent. The bound is, locally, Λ⁽ᵏ⁾·v⁽ᵏ⁾ + const at every layer k, v the relaxed network (each ReLU
    /// replaced by the line the backward pass chose for it) evaluated at the minimising input vertex x*; so
    /// ∂bound/∂α_p = a_p·z_p, a_p the coefficient on the ReLU's output and z_p its input in that relaxed network at
    /// x*. Steps move α by a shrinking amount in the gradient's sign; the best bound seen is returned (and its
    /// input coefficients left in <paramref name="lam"/>).
    /// </summary>
    private double AlphaLower(int b, ReadOnlySpan<double> row, double bias, double[] lam, double[] next, double[][] zLower, double[][] zUpper, double[][] wa, double[] xl, double[] xu, int steps)
    {
        int top = _layers.Length - 1, n0 = InputSize;
        var spec = row.ToArray();
        void Start() { Array.Clear(lam); spec.CopyTo(lam, 0); }
        Start();
        var rec = new Relaxation[top];
        for (int k = 0; k < top; k++) rec[k] = new Relaxation(_layers[k].Out);
        double best = BackLower(b, top, bias, lam, next, zLower, zUpper, wa, xl, xu, null, rec);
        // A row CROWN already proves needs no tighter bound (most boxes deep in the search): skip the steps.
        if (steps <= 0 || best > 0) return best;
        var bestLam = lam.AsSpan(0, n0).ToArray();
        // Start from CROWN's own choice (1 where u > −l, else 0) on the unstable neurons.
        var alpha = new double[top][];
        bool any = false;
        for (int k = 0; k < top; k++)
        {
            alpha[k] = new double[_layers[k].Out];
            for (int p = 0; p < alpha[k].Length; p++)
            {
                double l = zLower[k][b * alpha[k].Length + p], u = zUpper[k][b * alpha[k].Length + p];
                alpha[k][p] = u < -l ? 0 : 1;
                any |= _layers[k].Relu && l < 0 && u > 0;
            }
        }
        if (!any) return best;
        var v = new double[_layers.Max(l => Math.Max(l.In, l.Out))];
        for (int step = 0; step < steps; step++)
        {
            // Relaxed forward pass at x* (the vertex minimising the last bound) and the gradient's sign.
            var a = new double[n0];
            for (int j = 0; j < n0; j++) a[j] = lam[j] >= 0 ? xl[b * n0 + j] : xu[b * n0 + j];
            double eta = 0.5 / (1 + step);
            for (int k = 0; k < top; k++)
            {
                var L = _layers[k];
                var z = new double[L.Out];
                for (int i = 0; i < L.Out; i++)
                {
                    double sum = L.B[i];
                    for (int q = 0; q < L.In; q++) sum += L.W[i * L.In + q] * a[q];
                    z[i] = sum;
                }
                if (L.Relu)
                    for (int i = 0; i < L.Out; i++)
                    {
                        if (rec[k].Lowered[i] && rec[k].Coefficient[i] > 0 && z[i] != 0)
                            alpha[k][i] = Math.Clamp(alpha[k][i] + eta * Math.Sign(z[i]), 0, 1);
                        z[i] = rec[k].Slope[i] * z[i] + rec[k].Intercept[i];
                    }
                a = z;
            }
            Start();
            double lb = BackLower(b, top, bias, lam, next, zLower, zUpper, wa, xl, xu, alpha, rec);
            if (lb > best) { best = lb; lam.AsSpan(0, n0).CopyTo(bestLam); }
        }
        Array.Clear(lam);
        bestLam.CopyTo(lam, 0);
        return best;
    }

    /// <summary>What the backward pass chose for each ReLU of one layer: the line (slope, intercept) standing for
    /// it, whether that line is the free lower one, and the coefficient it received.</summary>
    private sealed class Relaxation(int n)
    {
        public readonly double[] Slope = new double[n], Intercept = new double[n], Coefficient = new double[n];
        public readonly bool[] Lowered = new bool[n];
    }

    /// <summary>
    /// CROWN: a sound lower bound of Λ·z_top + bias over box <paramref name="b"/>, back through layers top..0 with
    /// the ReLU relaxations given by the bounds of the layers below. Rounding of every product is accounted for
    /// (see the class comment). On return <paramref name="lam"/> holds the input coefficients. With
    /// <paramref name="alpha"/>, an unstable ReLU with a positive coefficient a takes the lower line α·z: the
    /// rounded product fl(a·α) equals a·α' for an α' that is still in [0, 1] (fl(a·α) ≤ a when α ≤ 1, since a is
    /// representable), so the bound is exactly CROWN's for a valid slope and needs no further margin.
    /// <paramref name="record"/>, when given, receives the lines chosen (for α's gradient). <paramref name="splits"/>
    /// adds the β-CROWN Lagrangian terms of a ReLU-split sub-domain (see <see cref="SplitConstraints"/>).
    /// </summary>
    private double BackLower(int b, int top, double bias, double[] lam, double[] next, double[][] zLower, double[][] zUpper, double[][] wa, double[] xl, double[] xu,
        double[][]? alpha = null, Relaxation[]? record = null, SplitConstraints? splits = null)
    {
        int n0 = InputSize;
        double margin = 0;
        for (int k = top; k >= 0; k--)
        {
            var L = _layers[k];
            double dot = 0, mag = 0;
            var wak = wa[k].AsSpan(b * L.Out, L.Out);
            for (int i = 0; i < L.Out; i++) { dot += lam[i] * L.B[i]; mag += Math.Abs(lam[i]) * (Math.Abs(L.B[i]) + wak[i]); }
            margin += Gamma(Math.Max(L.In, L.Out) + 2) * mag;
            bias += dot;
            margin += 2 * U * Math.Abs(bias);
            var nx = next.AsSpan(0, L.In);
            nx.Clear();
            for (int i = 0; i < L.Out; i++)
                if (lam[i] != 0) Axpy(lam[i], L.W.AsSpan(i * L.In, L.In), nx);
            Array.Clear(lam);
            nx.CopyTo(lam);
            if (k == 0) break;
            if (!_layers[k - 1].Relu) continue;
            int cur = L.In;
            var zl = zLower[k - 1]; var zu = zUpper[k - 1];
            var rec = record?[k - 1];
            for (int p = 0; p < cur; p++)
            {
                double l = zl[b * cur + p], u = zu[b * cur + p], a = lam[p];
                if (rec is not null) { rec.Coefficient[p] = a; rec.Lowered[p] = false; rec.Intercept[p] = 0; rec.Slope[p] = l >= 0 ? 1 : 0; }
                if (l >= 0 || a == 0) continue;
                if (u <= 0) { lam[p] = 0; continue; }
                if (a > 0)
                {
                    double slope = alpha is not null ? alpha[k - 1][p] : u < -l ? 0 : 1;
                    lam[p] = slope == 1 ? a : a * slope;
                    if (rec is not null) { rec.Slope[p] = slope; rec.Lowered[p] = true; }
                    continue;
                }
                double s = UpperSlope(l, u);
                bias += -a * s * l; // a·s·(z − l): the constant −a·s·l
                margin += 4 * U * Math.Abs(a) * s * (Math.Max(Math.Abs(l), Math.Abs(u)) + Math.Abs(l)) + 2 * U * Math.Abs(bias);
                lam[p] = a * s;
                if (rec is not null) { rec.Slope[p] = s; rec.Intercept[p] = -s * l; }
            }
            if (splits is not null) splits.AddLagrangian(k - 1, lam.AsSpan(0, cur));
        }
        var (lb, _) = Concretise(lam.AsSpan(0, n0), xl.AsSpan(b * n0, n0), xu.AsSpan(b * n0, n0), bias, true);
        return Outward.Down(lb - margin * 1.001, margin + Math.Abs(lb), 2);
    }

    /// <summary>A ReLU's upper chord slope u/(u−l) on l &lt; 0 &lt; u, rounded up (a steeper line through (l, 0)
    /// stays above the ReLU on [l, u]).</summary>
    private static double UpperSlope(double l, double u) => Math.Min(1, Math.BitIncrement(Math.BitIncrement(u / (u - l))));

    /// <summary>Bounds of f(x) = Σ fⱼxⱼ + f₀ (+ extra) over the box, rounded outward.</summary>
    private static (double lo, double hi) Concretise(ReadOnlySpan<double> f, ReadOnlySpan<double> l, ReadOnlySpan<double> u, double extra, bool noConstant = false)
    {
        int n = l.Length;
        double c = (noConstant ? 0 : f[n]) + extra;
        double lo = c, hi = c, mag = Math.Abs(c) + (noConstant ? 0 : Math.Abs(f[n])) + Math.Abs(extra);
        for (int j = 0; j < n; j++)
        {
            double a = f[j];
            if (a == 0) continue;
            double p = a * l[j], q = a * u[j];
            if (p <= q) { lo += p; hi += q; } else { lo += q; hi += p; }
            mag += Math.Max(Math.Abs(p), Math.Abs(q));
        }
        return (Outward.Down(lo, mag, n + 2), Outward.Up(hi, mag, n + 2));
    }

    /// <summary>y += a·x.</summary>
    private static void Axpy(double a, ReadOnlySpan<double> x, Span<double> y)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<double>.Count)
        {
            var va = new Vector<double>(a);
            for (; i <= x.Length - Vector<double>.Count; i += Vector<double>.Count)
            {
                var vy = new Vector<double>(y.Slice(i)) + va * new Vector<double>(x.Slice(i));
                vy.CopyTo(y.Slice(i));
            }
        }
        for (; i < x.Length; i++) y[i] += a * x[i];
    }

    /// <summary>
    /// Projected descent (float64, exact gradients) on max over rows of (C·y − d) inside the box, from
    /// <paramref name="x"/> (updated in place to the best point seen). Returns the best value: ≤ 0 means every
    /// row holds there, i.e. a candidate counterexample (still to be confirmed on the runtime).
    /// </summary>
    public double Descend(double[] x, ReadOnlySpan<double> lower, ReadOnlySpan<double> upper, double[] c, double[] d, int steps)
    {
        int n = InputSize, rows = d.Length, outs = OutputSize;
        var acts = new double[_layers.Length + 1][];
        var cur = (double[])x.Clone();
        double best = double.PositiveInfinity;
        for (int step = 0; step <= steps; step++)
        {
            var a = new double[n];
            for (int j = 0; j < n; j++) a[j] = cur[j] + _shift[j];
            acts[0] = a;
            for (int k = 0; k < _layers.Length; k++)
            {
                var L = _layers[k]; var z = new double[L.Out];
                for (int i = 0; i < L.Out; i++)
                {
                    double s = L.B[i] + Dot(L.W.AsSpan(i * L.In, L.In), a);
                    z[i] = L.Relu ? Math.Max(0, s) : s;
                }
                acts[k + 1] = a = z;
            }
            int row = 0; double worst = double.NegativeInfinity;
            for (int r = 0; r < rows; r++)
            {
                double v = -d[r];
                for (int j = 0; j < outs; j++) v += c[r * outs + j] * a[j];
                if (v > worst) { worst = v; row = r; }
            }
            if (worst < best) { best = worst; Array.Copy(cur, x, n); }
            if (step == steps || best <= 0) break;
            var g = new double[outs];
            for (int j = 0; j < outs; j++) g[j] = c[row * outs + j];
            for (int k = _layers.Length - 1; k >= 0; k--)
            {
                var L = _layers[k];
                if (L.Relu) for (int i = 0; i < L.Out; i++) if (acts[k + 1][i] <= 0) g[i] = 0;
                var gi = new double[L.In];
                for (int i = 0; i < L.Out; i++) if (g[i] != 0) Axpy(g[i], L.W.AsSpan(i * L.In, L.In), gi);
                g = gi;
            }
            double size = 0.25 * Math.Pow(0.85, step);
            for (int j = 0; j < n; j++)
                cur[j] = Math.Clamp(cur[j] - size * Math.Sign(g[j]) * (upper[j] - lower[j]), lower[j], upper[j]);
        }
        return best;
    }

    /// <summary>The exact (float64) output at a point, for cheap screening of attack candidates.</summary>
    public double[] Evaluate(ReadOnlySpan<double> x)
    {
        var a = new double[InputSize];
        for (int j = 0; j < a.Length; j++) a[j] = x[j] + _shift[j];
        foreach (var L in _layers)
        {
            var z = new double[L.Out];
            for (int i = 0; i < L.Out; i++)
            {
                double s = L.B[i];
                for (int p = 0; p < L.In; p++) s += L.W[i * L.In + p] * a[p];
                z[i] = L.Relu ? Math.Max(0, s) : s;
            }
            a = z;
        }
        return a;
    }
}
