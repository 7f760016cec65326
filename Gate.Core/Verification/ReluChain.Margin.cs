namespace Gate.Core.Verification;

public sealed partial class ReluChain
{
    /// <summary>
    /// The falsifier's loss at <paramref name="x"/> (float64, the real-valued network): max over rows of (C·y − d),
    /// ≤ 0 exactly where every row holds (a candidate counterexample). With <paramref name="grad"/>, also the gradient
    /// of the soft maximum Σ w_r (C·y − d)_r with w = softmax(v / <paramref name="temperature"/>): every row that is
    /// close to the worst pulls, so descent does not zig-zag between rows that take turns being the maximum
    /// (temperature 0: the worst row alone). Returns the hard maximum either way.
    /// </summary>
    public double Margin(ReadOnlySpan<double> x, double[] c, double[] d, double[]? grad, double temperature, MarginScratch s)
    {
        int rows = d.Length, outs = OutputSize;
        var a = s.Acts[0];
        for (int j = 0; j < InputSize; j++) a[j] = x[j] + _shift[j];
        for (int k = 0; k < _layers.Length; k++)
        {
            var L = _layers[k]; var z = s.Acts[k + 1];
            for (int i = 0; i < L.Out; i++)
            {
                double v = L.B[i] + Dot(L.W.AsSpan(i * L.In, L.In), a.AsSpan(0, L.In));
                z[i] = L.Relu ? Math.Max(0, v) : v;
            }
            a = z;
        }
        double worst = double.NegativeInfinity;
        var vr = s.Rows;
        for (int r = 0; r < rows; r++)
        {
            double v = -d[r];
            for (int j = 0; j < outs; j++) v += c[r * outs + j] * a[j];
            vr[r] = v;
            if (v > worst) worst = v;
        }
        if (grad is null) return worst;
        // Row weights: softmax of v / T (T relative to the rows' spread is up to the caller), the worst row when T = 0.
        double total = 0;
        for (int r = 0; r < rows; r++)
        {
            double w = temperature > 0 ? Math.Exp((vr[r] - worst) / temperature) : vr[r] == worst ? 1 : 0;
            vr[r] = w; total += w;
        }
        var g = s.Grad[_layers.Length];
        Array.Clear(g, 0, outs);
        for (int r = 0; r < rows; r++)
            if (vr[r] != 0) for (int j = 0; j < outs; j++) g[j] += vr[r] / total * c[r * outs + j];
        for (int k = _layers.Length - 1; k >= 0; k--)
        {
            var L = _layers[k];
            var gOut = s.Grad[k + 1]; var gIn = s.Grad[k];
            if (L.Relu) for (int i = 0; i < L.Out; i++) if (s.Acts[k + 1][i] <= 0) gOut[i] = 0;
            Array.Clear(gIn, 0, L.In);
            for (int i = 0; i < L.Out; i++) if (gOut[i] != 0) Axpy(gOut[i], L.W.AsSpan(i * L.In, L.In), gIn.AsSpan(0, L.In));
        }
        Array.Copy(s.Grad[0], grad, InputSize);
        return worst;
    }

    /// <summary>Per-thread buffers for <see cref="Margin"/> (activations and gradients of every layer).</summary>
    public MarginScratch NewScratch(int rows) => new(this, rows);

    public sealed class MarginScratch
    {
        internal readonly double[][] Acts, Grad;
        internal readonly double[] Rows;
        internal MarginScratch(ReluChain chain, int rows)
        {
            int depth = chain._layers.Length;
            Acts = new double[depth + 1][]; Grad = new double[depth + 1][];
            Acts[0] = new double[chain.InputSize]; Grad[0] = new double[chain.InputSize];
            for (int k = 0; k < depth; k++) { Acts[k + 1] = new double[chain._layers[k].Out]; Grad[k + 1] = new double[chain._layers[k].Out]; }
            Rows = new double[rows];
        }
    }
}
