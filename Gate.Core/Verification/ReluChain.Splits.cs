using System.Numerics;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Verification;

/// <summary>
/// ReLU-split branch and bound on a <see cref="ReluChain"/> (high-dimensional inputs, e.g. mnist_fc): β-CROWN.
///
/// A sub-domain is the input box restricted by sign constraints s·z_p ≥ 0 on some hidden neurons (s = +1: active,
/// −1: inactive). Intermediate bounds are the root's (computed once, valid on every subset of the box) with each
/// split neuron's interval clamped to its side, so a split ReLU is exact (identity or zero). The constraints
/// themselves enter the final bound as Lagrangian terms: for β ≥ 0, objective(x) ≥ objective(x) − β·s·z_p(x) on
/// the sub-domain, so the CROWN bound of the right-hand side over the whole box is a sound bound over the
/// sub-domain; β (per split neuron) and the lower ReLU slopes α (per free unstable neuron) are optimised together
/// by projected sign-gradient steps, warm-started from the parent sub-domain. The float32 error allowance is the
/// root box's (valid for every subset).
/// </summary>
public sealed partial class ReluChain
{
    /// <summary>Box 0's intermediate state from <see cref="Bound(int, double[], double[], double[], double[], BoxState?)"/>.</summary>
    internal sealed class BoxState
    {
        public double[] Xl = [], Xu = [];
        public double[][] ZLower = [], ZUpper = [], Wa = [];
        public double[] RowError = [];
    }

    /// <summary>The β terms of one sub-domain for <see cref="BackLower"/>: sign and multiplier per hidden neuron.</summary>
    private sealed class SplitConstraints(sbyte[][] sign, double[][] beta)
    {
        public readonly sbyte[][] Sign = sign;
        public readonly double[][] Beta = beta;

        /// <summary>
        /// Adds −β·s to the coefficients <paramref name="lam"/> on layer k's pre-activations. Rounding needs no
        /// margin: for s = +1, fl(λ − β) ≤ λ (λ is representable and rounding is monotone), so the computed
        /// coefficient is λ − β' with β' ≥ 0, again a valid multiplier; likewise fl(λ + β) ≥ λ for s = −1.
        /// </summary>
        public void AddLagrangian(int k, Span<double> lam)
        {
            var s = Sign[k]; var b = Beta[k];
            for (int p = 0; p < lam.Length; p++)
                if (s[p] != 0 && b[p] > 0) lam[p] -= s[p] * b[p];
        }
    }

    /// <summary>The root of ReLU-split branch and bound for one box and specification (C·y − d ≥ 0 per row).</summary>
    public sealed class SplitRoot
    {
        internal BoxState State = null!;
        internal double[] C = [], Bias = [], RowError = [];
        internal double[] Lower = [], Upper = [];
        /// <summary>Offset of hidden layer k's neurons in a sub-domain's flat arrays.</summary>
        internal int[] Offset = [];
        public int Neurons { get; internal set; }
        public int Rows => Bias.Length;
    }

    /// <summary>
    /// A sub-domain: sign constraints on hidden neurons (flat over the hidden layers: +1 active, −1 inactive, 0 free),
    /// and the α/β of its parent's best bound per row (warm start; any value in range is sound, so float storage
    /// is only a matter of tightness).
    /// </summary>
    public sealed record SplitDomain(sbyte[] Sign, float[]? Alpha, float[]? Beta, int Depth);

    /// <summary>A sub-domain's bound: the best row's sound lower bound, that row's minimising input vertex (model
    /// coordinates), the neuron to split next (flat index, −1 when none is left), and whether the constraints are
    /// contradictory (the sub-domain is empty).</summary>
    public sealed record SplitBound(double Lower, int Row, double[] Minimiser, int Branch, bool Infeasible, float[] Alpha, float[] Beta);

    /// <summary>Computes the root (intermediate bounds of the whole box, float32 allowance per row).</summary>
    public SplitRoot PrepareSplits(double[] lower, double[] upper, double[] c, double[] d)
    {
        var state = new BoxState();
        Bound(1, lower, upper, c, d, state);
        int top = _layers.Length - 1;
        var offset = new int[top + 1];
        for (int k = 0; k < top; k++) offset[k + 1] = offset[k] + _layers[k].Out;
        return new SplitRoot
        {
            State = state, C = (double[])c.Clone(), Bias = d.Select(v => -v).ToArray(), RowError = state.RowError, Lower = (double[])lower.Clone(),
            Upper = (double[])upper.Clone(), Offset = offset, Neurons = offset[top],
        };
    }

    /// <summary>The same root for rows <paramref name="first"/>..first+count−1 of its specification only: the
    /// intermediate bounds depend on the box alone, so the cases of a property that share a box (a robustness
    /// property's one case per other class) share one root computation.</summary>
    public SplitRoot SelectRows(SplitRoot root, int first, int count) => new()
    {
        State = root.State, C = root.C.AsSpan(first * OutputSize, count * OutputSize).ToArray(), Bias = root.Bias.AsSpan(first, count).ToArray(),
        RowError = root.RowError.AsSpan(first, count).ToArray(), Lower = root.Lower, Upper = root.Upper, Offset = root.Offset, Neurons = root.Neurons,
    };

    /// <summary>The unsplit root sub-domain.</summary>
    public SplitDomain RootDomain(SplitRoot root) => new(new sbyte[root.Neurons], null, null, 0);

    /// <summary>
    /// Bounds one sub-domain (see the class comment) with <paramref name="steps"/> α/β steps per row; stops early
    /// once a row is proved. Never looser than CROWN with the clamped intermediate bounds when started cold
    /// (the first pass is CROWN itself and the best pass is kept).
    /// </summary>
    public SplitBound BoundSplit(SplitRoot root, SplitDomain dom, int steps)
    {
        var st = root.State;
        int top = _layers.Length - 1, n0 = InputSize, H = root.Neurons;
        // Intermediate bounds clamped to each split's side.
        var zl = new double[top][]; var zu = new double[top][];
        var sign = new sbyte[top][]; var beta = new double[top][]; var alpha = new double[top][];
        bool infeasible = false;
        for (int k = 0; k < top; k++)
        {
            int o = root.Offset[k], n = _layers[k].Out;
            zl[k] = (double[])st.ZLower[k].Clone(); zu[k] = (double[])st.ZUpper[k].Clone();
            sign[k] = dom.Sign.AsSpan(o, n).ToArray();
            for (int p = 0; p < n; p++)
            {
                if (sign[k][p] > 0) zl[k][p] = Math.Max(zl[k][p], 0);
                else if (sign[k][p] < 0) zu[k][p] = Math.Min(zu[k][p], 0);
                if (zl[k][p] > zu[k][p]) infeasible = true;
            }
            beta[k] = new double[n]; alpha[k] = new double[n];
        }
        var outAlpha = new float[root.Rows * H]; var outBeta = new float[root.Rows * H];
        if (infeasible) return new SplitBound(double.PositiveInfinity, 0, (double[])root.Lower.Clone(), -1, true, outAlpha, outBeta);

        var splits = new SplitConstraints(sign, beta);
        int maxW = _layers.Max(l => Math.Max(l.In, l.Out));
        var lam = new double[maxW]; var next = new double[maxW];
        var rec = new Relaxation[top];
        var bestRec = new Relaxation[top];
        for (int k = 0; k < top; k++) { rec[k] = new Relaxation(_layers[k].Out); bestRec[k] = new Relaxation(_layers[k].Out); }
        double bestAll = double.NegativeInfinity; int bestRow = 0;
        double[] bestLamAll = new double[n0];
        double[][] coefAll = new double[top][];

        for (int r = 0; r < root.Rows; r++)
        {
            var spec = root.C.AsSpan(r * OutputSize, OutputSize).ToArray();
            for (int k = 0; k < top; k++)
            {
                int o = root.Offset[k];
                for (int p = 0; p < alpha[k].Length; p++)
                {
                    alpha[k][p] = dom.Alpha is { } a ? a[r * H + o + p] : zu[k][p] < -zl[k][p] ? 0 : 1;
                    beta[k][p] = dom.Beta is { } bt ? bt[r * H + o + p] : 0;
                }
            }
            double Pass()
            {
                Array.Clear(lam); spec.CopyTo(lam, 0);
                double lb = BackLower(0, top, root.Bias[r], lam, next, zl, zu, st.Wa, st.Xl, st.Xu, alpha, rec, splits);
                double e = root.RowError[r];
                return Outward.Down(lb - e, e + Math.Abs(lb), 2);
            }
            double best = Pass();
            var bestLam = lam.AsSpan(0, n0).ToArray();
            // β moves by Rprop (a step per multiplier that grows while its gradient keeps its sign and halves when
            // it flips): an empty sub-domain needs β to grow without bound, a feasible one needs it to settle.
            var stepB = new double[top][]; var lastB = new sbyte[top][];
            for (int k = 0; k < top; k++) { stepB[k] = new double[_layers[k].Out]; lastB[k] = new sbyte[_layers[k].Out]; }
            void KeepBest()
            {
                for (int k = 0; k < top; k++)
                {
                    int o = root.Offset[k];
                    Array.Copy(rec[k].Coefficient, bestRec[k].Coefficient, rec[k].Coefficient.Length);
                    for (int p = 0; p < alpha[k].Length; p++) { outAlpha[r * H + o + p] = (float)alpha[k][p]; outBeta[r * H + o + p] = (float)beta[k][p]; }
                }
            }
            KeepBest();
            for (int step = 0; step < steps && best <= 0; step++)
            {
                // The relaxed network at the minimising vertex x*: ∂bound/∂α_p = a_p·z_p (lowered neurons),
                // ∂bound/∂β_p = −s_p·z_p (split neurons); sign steps, shrinking.
                var z = RelaxedPreactivations(lam, st.Xl, st.Xu, rec);
                double eta = 0.5 / (1 + step);
                for (int k = 0; k < top; k++)
                {
                    if (!_layers[k].Relu) continue;
                    var co = rec[k].Coefficient;
                    double scale = 0;
                    for (int p = 0; p < co.Length; p++) scale += Math.Abs(co[p]);
                    scale /= Math.Max(1, co.Length);
                    for (int p = 0; p < co.Length; p++)
                    {
                        double zp = z[k][p];
                        if (zp == 0) continue;
                        if (sign[k][p] != 0)
                        {
                            var g = (sbyte)(-sign[k][p] * Math.Sign(zp));
                            ref double sz = ref stepB[k][p];
                            sz = sz == 0 ? 0.25 * (Math.Abs(co[p]) + scale) : g == lastB[k][p] ? sz * 1.5 : sz * 0.5;
                            lastB[k][p] = g;
                            beta[k][p] = Math.Max(0, beta[k][p] + g * sz);
                        }
                        else if (rec[k].Lowered[p] && co[p] > 0)
                            alpha[k][p] = Math.Clamp(alpha[k][p] + eta * Math.Sign(zp), 0, 1);
                    }
                }
                double lb = Pass();
                if (lb > best) { best = lb; lam.AsSpan(0, n0).CopyTo(bestLam); KeepBest(); }
            }
            if (best > bestAll || r == 0)
            {
                bestAll = best; bestRow = r; bestLam = bestLam.ToArray();
                bestLamAll = bestLam;
                for (int k = 0; k < top; k++) coefAll[k] = (double[])bestRec[k].Coefficient.Clone();
            }
            if (best > 0) break;
        }

        // The minimiser of the best row's bound, in model coordinates, and the free unstable neuron whose
        // relaxation costs the bound most (BaBSR-style: |coefficient| × the upper chord's intercept u·(−l)/(u−l)).
        var xs = new double[n0];
        for (int j = 0; j < n0; j++) xs[j] = bestLamAll[j] >= 0 ? root.Lower[j] : root.Upper[j];
        int branch = -1; double score = -1;
        for (int k = 0; k < top; k++)
        {
            if (!_layers[k].Relu) continue;
            int o = root.Offset[k];
            for (int p = 0; p < zl[k].Length; p++)
            {
                double l = zl[k][p], u = zu[k][p];
                if (sign[k][p] != 0 || !(l < 0 && u > 0)) continue;
                double sc = (Math.Abs(coefAll[k][p]) + 1e-12) * u * -l / (u - l);
                if (sc > score) { score = sc; branch = o + p; }
            }
        }
        return new SplitBound(bestAll, bestRow, xs, branch, false, outAlpha, outBeta);
    }

    /// <summary>The two children of splitting flat neuron <paramref name="neuron"/> (active first), inheriting the
    /// parent's α/β (the new multiplier starts at 0).</summary>
    public static (SplitDomain active, SplitDomain inactive) Children(SplitDomain dom, SplitBound sb, int neuron)
    {
        var a = (sbyte[])dom.Sign.Clone(); a[neuron] = 1;
        var i = (sbyte[])dom.Sign.Clone(); i[neuron] = -1;
        // The warm-start arrays are never written after the bound that made them: both children share them.
        return (new SplitDomain(a, sb.Alpha, sb.Beta, dom.Depth + 1), new SplitDomain(i, sb.Alpha, sb.Beta, dom.Depth + 1));
    }

    /// <summary>Σ x·y, vectorised (the order of the sum does not matter where it is used: attack points, gradients).</summary>
    private static double Dot(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        int i = 0; double s = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<double>.Count)
        {
            var acc = Vector<double>.Zero;
            for (; i <= x.Length - Vector<double>.Count; i += Vector<double>.Count)
                acc += new Vector<double>(x.Slice(i)) * new Vector<double>(y.Slice(i));
            s = Vector.Sum(acc);
        }
        for (; i < x.Length; i++) s += x[i] * y[i];
        return s;
    }

    /// <summary>The sign pattern of the hidden pre-activations at <paramref name="x"/> (float64, flat as in a
    /// <see cref="SplitDomain"/>): which sub-domains contain the point.</summary>
    public sbyte[] Signs(ReadOnlySpan<double> x)
    {
        var a = new double[InputSize];
        for (int j = 0; j < a.Length; j++) a[j] = x[j] + _shift[j];
        var signs = new List<sbyte>();
        for (int k = 0; k < _layers.Length - 1; k++)
        {
            var L = _layers[k]; var z = new double[L.Out];
            for (int i = 0; i < L.Out; i++)
            {
                double s = L.B[i];
                for (int p = 0; p < L.In; p++) s += L.W[i * L.In + p] * a[p];
                signs.Add((sbyte)Math.Sign(s));
                z[i] = L.Relu ? Math.Max(0, s) : s;
            }
            a = z;
        }
        return signs.ToArray();
    }

    /// <summary>Pre-activations of every hidden layer in the relaxed network (each ReLU replaced by the line the
    /// last backward pass chose) at the input vertex minimising the final coefficients <paramref name="lam"/>.</summary>
    private double[][] RelaxedPreactivations(double[] lam, double[] xl, double[] xu, Relaxation[] rec)
    {
        int n0 = InputSize, top = _layers.Length - 1;
        var a = new double[n0];
        for (int j = 0; j < n0; j++) a[j] = lam[j] >= 0 ? xl[j] : xu[j];
        var zs = new double[top][];
        for (int k = 0; k < top; k++)
        {
            var L = _layers[k];
            var z = new double[L.Out];
            for (int i = 0; i < L.Out; i++)
            {
                z[i] = L.B[i] + Dot(L.W.AsSpan(i * L.In, L.In), a);
            }
            zs[k] = (double[])z.Clone();
            if (L.Relu) for (int i = 0; i < L.Out; i++) z[i] = rec[k].Slope[i] * z[i] + rec[k].Intercept[i];
            a = z;
        }
        return zs;
    }
}
