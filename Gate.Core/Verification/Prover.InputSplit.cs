namespace Gate.Core.Verification;

public sealed partial class Prover
{
    /// <summary>
    /// Input-split branch and bound for low-dimensional inputs on a <see cref="ReluChain"/>: every worker pops a
    /// batch of sub-boxes from a shared depth-first stack (so memory stays proportional to depth × batch), bounds
    /// them in one batched pass, drops those with a specification row proved positive, tries the bound's
    /// minimising vertex and the centre of the others as counterexamples (screened in float64, confirmed on the
    /// confirming runtime), and bisects the rest along the input whose width times its coefficient in the
    /// tightest row's linear bound is largest (the bound's sensitivity to that input). Before the search, and on
    /// every open sub-box, a short projected descent (float64, exact gradients on the chain) hunts for `sat`.
    /// </summary>
    /// <summary>
    /// Random restarts of projected descent over the whole box (cheap on the chain, in float64), each point that
    /// violates every row confirmed on the runtime: the first confirmed counterexample, or null. Seeded from the
    /// prover's seed and <paramref name="seedSalt"/>, so each search draws its own reproducible starts.
    /// </summary>
    private (float[] x, float[] y)? RestartAttack(VnnCase c, ReluChain chain, double[] cm, double[] d, int restarts, int seedSalt, CancellationToken ct)
    {
        var rng = new Random((int)(_o.Seed ^ (_o.Seed >> 32)) + seedSalt);
        for (int r = 0; r < restarts && !ct.IsCancellationRequested; r++)
        {
            var x = new double[chain.InputSize];
            for (int j = 0; j < x.Length; j++) x[j] = c.InputLower[j] + rng.NextDouble() * (c.InputUpper[j] - c.InputLower[j]);
            if (chain.Descend(x, c.InputLower, c.InputUpper, cm, d, 30) <= 1e-6 && Confirm(c, ToBoxFloat(c, x)) is { } cex) return cex;
        }
        return null;
    }

    private (ProofStatus status, (float[] x, float[] y)? cex, long domains, string why) DecideByInputSplit(VnnCase c, ReluChain chain, CancellationToken ct)
    {
        var (cm, d) = Spec(c, chain.OutputSize);
        int n = chain.InputSize, rows = d.Length, outs = chain.OutputSize;
        if (RestartAttack(c, chain, cm, d, _o.ChainAttackRestarts, seedSalt: 7, ct) is { } cex0) return (ProofStatus.Sat, cex0, 0, "");

        using var pool = new DomainPool<double[]>(_o.Workers, _o.MaxOpenDomains, ct); // a box: lower (n) then upper (n)
        pool.Push([.. c.InputLower, .. c.InputUpper]);
        int batch = Math.Max(1, _o.InputSplitBatch);
        var scratch = new ThreadLocal<(double[] lo, double[] hi)>(() => (new double[batch * n], new double[batch * n]));

        pool.Run(batch, (taken, k) =>
        {
            var (lo, hi) = scratch.Value;
            var centre = new double[n];
            for (int b = 0; b < k; b++) { Array.Copy(taken[b], 0, lo, b * n, n); Array.Copy(taken[b], n, hi, b * n, n); }
            var bounds = chain.Bound(k, lo, hi, cm, d);
            for (int b = 0; b < k && !pool.Stopping; b++)
            {
                int best = 0;
                for (int s = 1; s < rows; s++) if (bounds.Lower[b * rows + s] > bounds.Lower[b * rows + best]) best = s;
                if (bounds.Lower[b * rows + best] > 0) continue;
                var bl = lo.AsSpan(b * n, n); var bh = hi.AsSpan(b * n, n);
                var lam = bounds.InputLambda.AsSpan((b * rows + best) * n, n);
                // Attack: projected descent from the vertex minimising the tightest row's bound, and from
                // the centre; a point where every row holds is confirmed on the runtime.
                var vertex = new double[n];
                for (int j = 0; j < n; j++) { vertex[j] = lam[j] >= 0 ? bl[j] : bh[j]; centre[j] = 0.5 * (bl[j] + bh[j]); }
                foreach (var cand in new[] { vertex, (double[])centre.Clone() })
                    if (chain.Descend(cand, bl, bh, cm, d, _o.SubdomainAttackSteps) <= 1e-6 && Confirm(c, ToBoxFloat(c, cand)) is { } cex)
                    { pool.Sat(cex); return; }
                int dim = -1; double score = -1;
                for (int j = 0; j < n; j++)
                {
                    double w = bh[j] - bl[j];
                    if (w <= 1e-9 * (1 + Math.Abs(bl[j]))) continue;
                    double sc = (Math.Abs(lam[j]) + 1e-12) * w;
                    if (sc > score) { score = sc; dim = j; }
                }
                if (dim < 0) { pool.Undecided("an input box became too small to split further"); continue; }
                if (!pool.RoomToBranch()) return;
                double mid = 0.5 * (bl[dim] + bh[dim]);
                var left = new double[2 * n]; var right = new double[2 * n];
                bl.CopyTo(left); bh.CopyTo(left.AsSpan(n)); bl.CopyTo(right); bh.CopyTo(right.AsSpan(n));
                left[n + dim] = mid; right[dim] = mid;
                pool.Push(left); pool.Push(right);
            }
        });
        scratch.Dispose();
        return pool.Outcome();
    }
}
