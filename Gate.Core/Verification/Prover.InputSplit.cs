namespace Gate.Core.Verification;

public sealed partial class Prover
{
    /// <summary>
    /// The restart attack each chain search opens with: the falsifier's multi-start search over the case's box with
    /// <paramref name="restarts"/> descents (see <see cref="Falsifier"/>), the running property's falsifier when there
    /// is one, else one seeded from the prover's seed and <paramref name="seedSalt"/>.
    /// </summary>
    internal (float[] x, float[] y)? RestartAttack(VnnCase c, ReluChain chain, double[] cm, double[] d, int restarts, int seedSalt, CancellationToken ct) =>
        (_falsifier is { } f && f.Covers(c) ? f : new Falsifier(this, chain, [c], seedSalt)).Search(c, restarts, ct);

    /// <summary>
    /// Input-split branch and bound for low-dimensional inputs on a <see cref="ReluChain"/>: every worker pops a
    /// batch of sub-boxes from a shared depth-first stack (so memory stays proportional to depth × batch), bounds
    /// them in one batched pass, drops those with a specification row proved positive, tries the bound's
    /// minimising vertex and the centre of the others as counterexamples (screened in float64, confirmed on the
    /// confirming runtime), and bisects the rest along the input whose width times its coefficient in the
    /// tightest row's linear bound is largest (the bound's sensitivity to that input) — or, with
    /// <see cref="ProverOptions.InputSplitLookahead"/>, along whichever of the few most sensitive inputs gives the
    /// better children's bounds (see <see cref="ChooseSplits"/>). Before the search, and on
    /// every open sub-box, a short projected descent (float64, exact gradients on the chain) hunts for `sat`.
    /// </summary>
    private (ProofStatus status, (float[] x, float[] y)? cex, long domains, string why) DecideByInputSplit(VnnCase c, ReluChain chain, CancellationToken ct)
    {
        var (cm, d) = Spec(c, chain.OutputSize);
        if (RestartAttack(c, chain, cm, d, _o.ChainAttackRestarts, seedSalt: 7, ct) is { } cex0) return (ProofStatus.Sat, cex0, 0, "");
        if (!_o.InputSplitPortfolio || chain.AlphaSteps == 0 || _o.Workers < 2) return InputSplitSearch(c, chain, cm, d, _o.Workers, ct);

        // A portfolio of two searches. α-CROWN prunes some properties' sub-boxes far sooner, and on others its tighter
        // bound steers the split choice (by its own input coefficients) into far more sub-boxes: on ACAS Xu, prop_1 of
        // run2a_1_4 is proved in ~2 s with α and not within 60 s without; prop_4 of run2a_1_1 the reverse (1.9 s
        // without, > 116 s with). Which one a property needs is not known beforehand, so both run, half the workers
        // each; each answer is sound on its own, and the first sat or unsat ends both.
        using var first = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var arms = new[] { chain, chain.WithAlphaSteps(0) };
        var results = new (ProofStatus status, (float[] x, float[] y)? cex, long domains, string why)[arms.Length];
        var searches = arms.Select((arm, i) => Task.Run(() =>
        {
            try { results[i] = InputSplitSearch(c, arm, cm, d, Math.Max(1, _o.Workers / arms.Length), first.Token); }
            finally { if (results[i].status is ProofStatus.Sat or ProofStatus.Unsat) first.Cancel(); }
        })).ToArray();
        try { Task.WaitAll(searches); }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0) { System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw(); }
        long domains = results.Sum(r => r.domains);
        foreach (var wanted in new[] { ProofStatus.Sat, ProofStatus.Unsat })
            if (Array.FindIndex(results, r => r.status == wanted) is var i and >= 0)
                return (wanted, results[i].cex, domains, results[i].why);
        // Neither decided: the α search's reason (an unprovable box, the timeout) speaks for both.
        return (results[0].status, null, domains, results[0].why);
    }

    /// <summary>One input-split search (see <see cref="DecideByInputSplit"/>) with <paramref name="workers"/> workers.</summary>
    private (ProofStatus status, (float[] x, float[] y)? cex, long domains, string why) InputSplitSearch(VnnCase c, ReluChain chain, double[] cm, double[] d, int workers, CancellationToken ct)
    {
        int n = chain.InputSize, rows = d.Length, outs = chain.OutputSize;
        using var pool = new DomainPool<double[]>(workers, _o.MaxOpenDomains, ct); // a box: lower (n) then upper (n)
        pool.Push([.. c.InputLower, .. c.InputUpper]);
        int batch = Math.Max(1, _o.InputSplitBatch);
        var scratch = new ThreadLocal<(double[] lo, double[] hi)>(() => (new double[batch * n], new double[batch * n]));

        pool.Run(batch, (taken, k) =>
        {
            // The falsifier's share of this worker's time (attacks on the most promising open sub-boxes).
            if (_falsifier?.Tick(_o.Workers, pool.Token) is { } fx) { pool.Sat(fx); return; }
            var (lo, hi) = scratch.Value;
            var centre = new double[n];
            for (int b = 0; b < k; b++) { Array.Copy(taken[b], 0, lo, b * n, n); Array.Copy(taken[b], n, hi, b * n, n); }
            var bounds = chain.Bound(k, lo, hi, cm, d);
            var open = new List<(int box, int[] dims)>();
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
                {
                    double v = chain.Descend(cand, bl, bh, cm, d, _o.SubdomainAttackSteps);
                    if (v <= 1e-6 && Confirm(c, ToBoxFloat(c, cand)) is { } cex) { pool.Sat(cex); return; }
                    _falsifier?.Offer(c, bl, bh, cand, v);
                }
                // Candidate inputs to bisect, most sensitive first: width × |coefficient| in the tightest row.
                var dims = new List<(int dim, double score)>();
                for (int j = 0; j < n; j++)
                {
                    double w = bh[j] - bl[j];
                    if (w <= 1e-9 * (1 + Math.Abs(bl[j]))) continue;
                    dims.Add((j, (Math.Abs(lam[j]) + 1e-12) * w));
                }
                if (dims.Count == 0) { pool.Undecided("an input box became too small to split further"); continue; }
                // Stable: on equal scores the lower input index first, as a plain strict-maximum scan picks it.
                open.Add((b, [.. dims.OrderByDescending(t => t.score).Take(Math.Max(1, _o.InputSplitLookahead)).Select(t => t.dim)]));
            }
            if (pool.Stopping || open.Count == 0) return;
            var children = ChooseSplits(chain, open, lo, hi, cm, d, out int lookedAhead);
            pool.AlsoBounded(lookedAhead);
            foreach (var child in children)
            {
                if (!pool.RoomToBranch()) return;
                pool.Push(child);
            }
        });
        scratch.Dispose();
        return pool.Outcome();
    }

    /// <summary>
    /// The children to push for each open box (<paramref name="lo"/>/<paramref name="hi"/> rows) with its
    /// candidate inputs, most sensitive first. One candidate: bisect it. Several: bound the children of every
    /// candidate split of every box in one batched pass and keep the split whose worse child has the higher
    /// bound (the split that helps most where it is needed: a smear-like choice measured, not estimated);
    /// children already proved by that pass are not pushed at all. Every bound used is sound, so the choice
    /// affects only speed. <paramref name="bounded"/>: how many child boxes that pass bounded.
    /// </summary>
    private static List<double[]> ChooseSplits(ReluChain chain, List<(int box, int[] dims)> open, double[] lo, double[] hi, double[] cm, double[] d, out int bounded)
    {
        bounded = 0;
        int n = chain.InputSize, rows = d.Length;
        var children = new List<double[]>();
        (double[] left, double[] right) Bisect(int b, int dim)
        {
            var left = new double[2 * n]; var right = new double[2 * n];
            Array.Copy(lo, b * n, left, 0, n); Array.Copy(hi, b * n, left, n, n);
            Array.Copy(lo, b * n, right, 0, n); Array.Copy(hi, b * n, right, n, n);
            double mid = 0.5 * (lo[b * n + dim] + hi[b * n + dim]);
            left[n + dim] = mid; right[dim] = mid;
            return (left, right);
        }
        if (open.All(o => o.dims.Length == 1))
        {
            foreach (var (b, dims) in open) { var (l, r) = Bisect(b, dims[0]); children.Add(l); children.Add(r); }
            return children;
        }
        var cand = new List<(int owner, int dim, double[] left, double[] right)>();
        for (int o = 0; o < open.Count; o++)
            foreach (var dim in open[o].dims) { var (l, r) = Bisect(open[o].box, dim); cand.Add((o, dim, l, r)); }
        int count = bounded = 2 * cand.Count;
        var cl = new double[count * n]; var ch = new double[count * n];
        for (int i = 0; i < cand.Count; i++)
            for (int side = 0; side < 2; side++)
            {
                var box = side == 0 ? cand[i].left : cand[i].right;
                Array.Copy(box, 0, cl, (2 * i + side) * n, n); Array.Copy(box, n, ch, (2 * i + side) * n, n);
            }
        var bounds = chain.Bound(count, cl, ch, cm, d);
        double Best(int child)
        {
            double v = double.NegativeInfinity;
            for (int s = 0; s < rows; s++) v = Math.Max(v, bounds.Lower[child * rows + s]);
            return v;
        }
        var pick = new int[open.Count]; var pickScore = new double[open.Count];
        Array.Fill(pick, -1); Array.Fill(pickScore, double.NegativeInfinity);
        for (int i = 0; i < cand.Count; i++)
        {
            // The worse child decides (both must be closed); ties go to the more sensitive input (listed first).
            double worse = Math.Min(Best(2 * i), Best(2 * i + 1));
            if (worse > pickScore[cand[i].owner]) { pickScore[cand[i].owner] = worse; pick[cand[i].owner] = i; }
        }
        foreach (int i in pick)
        {
            if (!(Best(2 * i) > 0)) children.Add(cand[i].left);
            if (!(Best(2 * i + 1) > 0)) children.Add(cand[i].right);
        }
        return children;
    }
}
