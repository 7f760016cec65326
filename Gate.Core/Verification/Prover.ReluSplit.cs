namespace Gate.Core.Verification;

public sealed partial class Prover
{
    /// <summary>
    /// ReLU-split branch and bound for high-dimensional inputs on a <see cref="ReluChain"/> (β-CROWN, see
    /// <see cref="ReluChain.BoundSplit"/>): the root's intermediate bounds are computed once; each worker pops a
    /// sub-domain from a shared depth-first stack, bounds it with α/β warm-started from its parent, tries the
    /// bound's minimising vertex (a short float64 descent, then the confirming runtime), and splits the free
    /// unstable neuron with the largest BaBSR-style score. A sub-domain with every unstable neuron split that is
    /// still not proved is left undecided (the answer is then unknown, never unsat).
    /// </summary>
    private (ProofStatus status, (float[] x, float[] y)? cex, long domains, string why) DecideByReluSplit(VnnCase c, ReluChain chain, CancellationToken ct,
        IReadOnlyList<VnnCase> siblings, Dictionary<VnnCase, ReluChain.SplitRoot> roots)
    {
        var (cm, d) = Spec(c, chain.OutputSize);
        int n = chain.InputSize;
        if (RestartAttack(c, chain, cm, d, _o.ReluSplitAttackRestarts, seedSalt: 11, ct) is { } cex0) return (ProofStatus.Sat, cex0, 0, "");
        if (ct.IsCancellationRequested) return (ProofStatus.Timeout, null, 0, "");

        var root = SplitRootOf(c, chain, siblings, roots);
        using var pool = new DomainPool<ReluChain.SplitDomain>(_o.Workers, _o.MaxOpenDomains, ct);
        pool.Push(chain.RootDomain(root));

        pool.Run(1, (taken, _) =>
        {
            var dom = taken[0];
            var sb = chain.BoundSplit(root, dom, dom.Depth == 0 ? _o.ReluSplitRootSteps : _o.ReluSplitSteps);
            // Nothing left to split: the relaxation is exact and only the multipliers can still improve.
            if (sb.Branch < 0 && !sb.Infeasible && sb.Lower <= 0)
                sb = chain.BoundSplit(root, dom with { Alpha = sb.Alpha, Beta = sb.Beta }, 10 * _o.ReluSplitRootSteps);
            if (sb.Infeasible || sb.Lower > 0) return;
            var cand = sb.Minimiser;
            double v = chain.Descend(cand, c.InputLower, c.InputUpper, cm, d, Math.Min(3, _o.SubdomainAttackSteps));
            if (v <= 1e-6 && Confirm(c, ToBoxFloat(c, cand)) is { } cex) { pool.Sat(cex); return; }
            _falsifier?.OfferPoint(c, cand, v);
            if (_falsifier?.Tick(_o.Workers, pool.Token) is { } fx) { pool.Sat(fx); return; }
            if (sb.Branch < 0)
            {
                // The exact bound of this region is ≤ 0: a counterexample may well lie in it; look harder.
                var far = sb.Minimiser;
                if (chain.Descend(far, c.InputLower, c.InputUpper, cm, d, 40) <= 1e-6 && Confirm(c, ToBoxFloat(c, far)) is { } cex2)
                { pool.Sat(cex2); return; }
                pool.Undecided("a sub-domain with every unstable ReLU split was not proved");
                return;
            }
            if (!pool.RoomToBranch()) return;
            var (active, inactive) = ReluChain.Children(dom, sb, sb.Branch);
            pool.Push(active); pool.Push(inactive);
        });
        return pool.Outcome();
    }

    /// <summary>The root of <paramref name="c"/>, computed once for all of <paramref name="siblings"/> with the same
    /// input box (their rows stacked into one specification; each case then takes its own rows).</summary>
    private static ReluChain.SplitRoot SplitRootOf(VnnCase c, ReluChain chain, IReadOnlyList<VnnCase> siblings, Dictionary<VnnCase, ReluChain.SplitRoot> roots)
    {
        if (roots.TryGetValue(c, out var mine)) return mine;
        var same = siblings.Where(s => s.Constraints.Count > 0 && s.InputLower.AsSpan().SequenceEqual(c.InputLower) && s.InputUpper.AsSpan().SequenceEqual(c.InputUpper)).ToList();
        if (!same.Contains(c)) same.Add(c);
        var specs = same.Select(s => Spec(s, chain.OutputSize)).ToList();
        var all = chain.PrepareSplits(c.InputLower, c.InputUpper, [.. specs.SelectMany(s => s.c)], [.. specs.SelectMany(s => s.d)]);
        int first = 0;
        for (int i = 0; i < same.Count; i++)
        {
            roots[same[i]] = chain.SelectRows(all, first, specs[i].d.Length);
            first += specs[i].d.Length;
        }
        return roots[c];
    }
}
