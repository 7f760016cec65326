using System.Diagnostics;

namespace Gate.Core.Verification;

public sealed partial class Prover
{
    /// <summary>The running <see cref="Prove"/>'s falsifier (a prover decides one property at a time); null off the chain path.</summary>
    private Falsifier? _falsifier;

    /// <summary>
    /// The `sat` hunter on a <see cref="ReluChain"/> (float64, exact gradients), in three roles: a multi-start search
    /// over every case's box before branch and bound (<see cref="Run"/>); the restart attack each search opens with
    /// (<see cref="RestartAttack"/>); and, during branch and bound, attacks on the open sub-boxes that came closest to
    /// violating (<see cref="Offer"/>), time-shared with proving (<see cref="Tick"/>: at most
    /// <see cref="ProverOptions.FalsifyShare"/> of the workers' time, one worker at a time). Ticks take turns: the
    /// closest waiting sub-box (its neighbourhood), one more global round over the next case, and a step of a
    /// best-first search by bound (<see cref="GuidedStep"/>) in the next case — the last two over every case of the
    /// property, so a violation in a later case of a disjunction is still hunted while an earlier case is proved.
    ///
    /// One search in a box: screen many cheap starts (the centre, the box's corners — all of them in up to 10
    /// dimensions —, a Latin-hypercube sample so that every input's range is covered evenly, and uniform points) by
    /// the loss max_r (C·y − d)_r alone, then run projected descent with momentum and a cosine step schedule from the
    /// best few, on a soft maximum over the rows. Every point whose loss is ≤ 0 is replayed on the confirming runtime
    /// (<see cref="Confirm"/>: inside the box, violating in float32) before it counts; nothing else is trusted.
    /// Seeds derive from <see cref="ProverOptions.Seed"/>, so a run draws the same starts in the same order.
    /// </summary>
    internal sealed class Falsifier
    {
        private sealed class Lead(int caseIndex, double[] lower, double[] upper, double[] point, double value)
        {
            public readonly int Case = caseIndex;
            public readonly double[] Lower = lower, Upper = upper, Point = point;
            public readonly double Value = value;
        }

        private const int MaxLeads = 256;
        private readonly Prover _p;
        private readonly ReluChain _chain;
        private readonly IReadOnlyList<VnnCase> _cases;
        private readonly (double[] c, double[] d)[] _specs;
        private readonly Dictionary<VnnCase, int> _index = new(ReferenceEqualityComparer.Instance);
        private readonly ReluChain.MarginScratch _scratch; // used by one search at a time (see _running)
        private readonly Random _rng;
        private readonly PriorityQueue<Lead, double> _leads = new(); // priority −value: the worst lead leaves first
        private readonly Lock _leadLock = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private double _worstKept = double.PositiveInfinity;
        private long _spentTicks;
        private int _running, _nextCase;

        public long Searches { get; private set; }

        public Falsifier(Prover p, ReluChain chain, IReadOnlyList<VnnCase> cases, int seedSalt)
        {
            _p = p; _chain = chain; _cases = cases;
            _specs = cases.Select(c => Spec(c, chain.OutputSize)).ToArray();
            for (int i = 0; i < cases.Count; i++) _index.TryAdd(cases[i], i);
            _scratch = chain.NewScratch(Math.Max(1, _specs.Max(s => s.d.Length)));
            _rng = new Random((int)(p._o.Seed ^ (p._o.Seed >> 32)) + seedSalt);
        }

        /// <summary>Global rounds over every case until a counterexample is confirmed, <paramref name="budget"/> passes, or cancellation.</summary>
        public (float[] x, float[] y)? Run(TimeSpan budget, CancellationToken ct)
        {
            var until = _clock.Elapsed + budget;
            lock (_scratch)
                for (int round = 0; _clock.Elapsed < until && !ct.IsCancellationRequested; round++)
                    if ((round % 3 < 2 ? GlobalRound(ct) : GuidedStep(ct)) is { } cex) return cex;
            return null;
        }

        /// <summary>One search over case <paramref name="c"/>'s whole box with <paramref name="descents"/> descents (the restart attack).</summary>
        public (float[] x, float[] y)? Search(VnnCase c, int descents, CancellationToken ct)
        {
            if (!_index.TryGetValue(c, out int i) || descents <= 0) return null;
            lock (_scratch) return Search(i, c.InputLower, c.InputUpper, null, descents, Steps, ct);
        }

        /// <summary>
        /// A sub-box branch and bound could not close, with the best point a short descent found in it and its loss:
        /// kept (the <see cref="MaxLeads"/> closest to violating) for <see cref="Tick"/> to attack.
        /// </summary>
        public void Offer(VnnCase c, ReadOnlySpan<double> lower, ReadOnlySpan<double> upper, double[] point, double value)
        {
            if (!(value < Volatile.Read(ref _worstKept)) || !_index.TryGetValue(c, out int i)) return;
            var lead = new Lead(i, lower.ToArray(), upper.ToArray(), (double[])point.Clone(), value);
            lock (_leadLock)
            {
                _leads.Enqueue(lead, -value);
                if (_leads.Count > MaxLeads) _leads.Dequeue();
                if (_leads.Count >= MaxLeads) Volatile.Write(ref _worstKept, _leads.TryPeek(out var worst, out _) ? worst.Value : double.PositiveInfinity);
            }
        }

        /// <summary>A point (of a sub-domain not defined by an input box, e.g. ReLU splits) that came close to violating:
        /// offered with a neighbourhood of a tenth of the case's box around it.</summary>
        public void OfferPoint(VnnCase c, double[] point, double value)
        {
            if (!(value < Volatile.Read(ref _worstKept))) return;
            var lo = new double[point.Length]; var hi = new double[point.Length];
            for (int j = 0; j < lo.Length; j++)
            {
                double r = 0.05 * (c.InputUpper[j] - c.InputLower[j]);
                lo[j] = Math.Max(c.InputLower[j], point[j] - r); hi[j] = Math.Min(c.InputUpper[j], point[j] + r);
            }
            Offer(c, lo, hi, point, value);
        }

        public bool Covers(VnnCase c) => _index.ContainsKey(c);

        /// <summary>
        /// Called by branch-and-bound workers between batches: when the falsifier is under its share of the workers'
        /// time and no other worker is in it, attacks the most promising lead (or runs a global round).
        /// </summary>
        public (float[] x, float[] y)? Tick(int workers, CancellationToken ct)
        {
            double share = _p._o.FalsifyShare;
            if (share <= 0 || Interlocked.CompareExchange(ref _running, 1, 0) != 0) return null;
            try
            {
                long now = _clock.ElapsedTicks;
                if (Interlocked.Read(ref _spentTicks) > share * now * Math.Max(1, workers)) return null;
                long t0 = now;
                try
                {
                    // In turn: the closest lead (a global round when none waits), a global round, a guided step.
                    int turn = _ticks++ % 3;
                    if (turn == 1) lock (_scratch) return GlobalRound(ct);
                    if (turn == 2) lock (_scratch) return GuidedStep(ct);
                    Lead? best = null;
                    lock (_leadLock)
                    {
                        foreach (var (lead, _) in _leads.UnorderedItems) if (best is null || lead.Value < best.Value) best = lead;
                        if (best is not null) _leads.Remove(best, out _, out _, ReferenceEqualityComparer.Instance);
                    }
                    if (best is null) lock (_scratch) return GlobalRound(ct);
                    // Search a neighbourhood three times the sub-box (within the case's box): the violating region
                    // need not lie inside the sub-box whose point came close.
                    var c = _cases[best.Case];
                    int n = best.Lower.Length;
                    var lo = new double[n]; var hi = new double[n];
                    for (int j = 0; j < n; j++)
                    {
                        double w = best.Upper[j] - best.Lower[j];
                        lo[j] = Math.Max(c.InputLower[j], best.Lower[j] - w);
                        hi[j] = Math.Min(c.InputUpper[j], best.Upper[j] + w);
                    }
                    lock (_scratch) return Search(best.Case, lo, hi, best.Point, LeadDescents, Steps, ct);
                }
                finally { Interlocked.Add(ref _spentTicks, _clock.ElapsedTicks - t0); }
            }
            finally { Volatile.Write(ref _running, 0); }
        }

        private const int Steps = 60, GlobalDescents = 8, LeadDescents = 4;

        /// <summary>Per case, the sub-boxes of the guided search, lowest bound first (see <see cref="GuidedStep"/>).</summary>
        private readonly Dictionary<int, PriorityQueue<(double[] lo, double[] hi, int dim), double>> _guided = [];
        private int _ticks, _nextGuided;
        private const int GuidedPops = 8, GuidedCap = 20_000;

        /// <summary>
        /// One step of a best-first search for a violation in one case (the cases in turn): the open sub-boxes whose
        /// sound lower bound of max_r (C·y − d)_r is lowest (where the relaxation leaves the most room for a violation)
        /// are bisected, the halves bounded in one batch, those proved dropped, and each remaining half attacked from
        /// the vertex minimising its bound and from its centre. Unlike branch and bound's depth-first order this goes
        /// straight to the most suspicious region of the whole box; it proves nothing (the queue is capped and its
        /// worst half dropped when full), it only finds.
        /// </summary>
        private (float[] x, float[] y)? GuidedStep(CancellationToken ct)
        {
            int ci = _nextGuided++ % _cases.Count;
            var c = _cases[ci];
            var (cm, d) = _specs[ci];
            if (d.Length == 0) return null;
            int n = c.InputLower.Length, rows = d.Length;
            if (!_guided.TryGetValue(ci, out var open))
            {
                _guided[ci] = open = new();
                open.Enqueue(((double[])c.InputLower.Clone(), (double[])c.InputUpper.Clone(), -1), double.NegativeInfinity);
            }
            var kids = new List<(double[] lo, double[] hi)>();
            while (kids.Count < 2 * GuidedPops && open.TryDequeue(out var box, out _))
            {
                if (box.dim < 0) { kids.Add((box.lo, box.hi)); continue; }
                double mid = 0.5 * (box.lo[box.dim] + box.hi[box.dim]);
                var h1 = (double[])box.hi.Clone(); h1[box.dim] = mid;
                var l2 = (double[])box.lo.Clone(); l2[box.dim] = mid;
                kids.Add((box.lo, h1)); kids.Add((l2, box.hi));
            }
            if (kids.Count == 0) return null;
            int k = kids.Count;
            var lo = new double[k * n]; var hi = new double[k * n];
            for (int b = 0; b < k; b++) { kids[b].lo.CopyTo(lo, b * n); kids[b].hi.CopyTo(hi, b * n); }
            var bounds = _chain.Bound(k, lo, hi, cm, d);
            for (int b = 0; b < k; b++)
            {
                if (ct.IsCancellationRequested) return null;
                int best = 0;
                for (int r = 1; r < rows; r++) if (bounds.Lower[b * rows + r] > bounds.Lower[b * rows + best]) best = r;
                double lb = bounds.Lower[b * rows + best];
                if (lb > 0) continue; // no violation in this half
                var (bl, bh) = kids[b];
                var lam = bounds.InputLambda.AsSpan((b * rows + best) * n, n);
                var vertex = new double[n];
                int dim = -1; double score = -1;
                for (int j = 0; j < n; j++)
                {
                    vertex[j] = lam[j] >= 0 ? bl[j] : bh[j];
                    double w = bh[j] - bl[j];
                    double sc = w <= 1e-9 * (1 + Math.Abs(bl[j])) ? -1 : (Math.Abs(lam[j]) + 1e-12) * w;
                    if (sc > score) { score = sc; dim = j; }
                }
                foreach (var x in new[] { vertex, bl.Select((l, j) => 0.5 * (l + bh[j])).ToArray() })
                    if (Descend(c, cm, d, x, bl, bh, 10) is { } cex) return cex;
                if (dim >= 0) open.Enqueue((bl, bh, dim), lb);
            }
            if (open.Count > GuidedCap)
            {
                var keep = new List<((double[], double[], int), double)>();
                for (int i = 0; i < GuidedCap / 2 && open.TryDequeue(out var e, out var pr); i++) keep.Add((e, pr));
                open.Clear();
                open.EnqueueRange(keep);
            }
            return null;
        }

        private (float[] x, float[] y)? GlobalRound(CancellationToken ct)
        {
            int i = _nextCase++ % _cases.Count;
            var c = _cases[i];
            if (c.Constraints.Count == 0) return null;
            lock (_scratch) return Search(i, c.InputLower, c.InputUpper, null, GlobalDescents, Steps, ct);
        }

        private (float[] x, float[] y)? Search(int ci, double[] lo, double[] hi, double[]? seed, int descents, int steps, CancellationToken ct)
        {
            Searches++;
            var c = _cases[ci];
            var (cm, d) = _specs[ci];
            if (d.Length == 0) return null;
            int n = lo.Length;
            var starts = new List<double[]>();
            if (seed is not null) starts.Add((double[])seed.Clone());
            starts.Add(lo.Select((l, j) => 0.5 * (l + hi[j])).ToArray());
            // Corners: every one in low dimension (ACAS Xu's violations often sit on the box's faces), else a sample.
            if (n <= 10) for (int m = 0; m < 1 << n; m++) starts.Add(lo.Select((l, j) => (m >> j & 1) == 0 ? l : hi[j]).ToArray());
            else for (int m = 0; m < 16; m++) starts.Add(lo.Select((l, j) => _rng.Next(2) == 0 ? l : hi[j]).ToArray());
            // Latin hypercube: each input's range cut into `strata` slices, each slice used once per input.
            int strata = n <= 10 ? 128 : 48;
            var perm = new int[n][];
            for (int j = 0; j < n; j++) { perm[j] = Enumerable.Range(0, strata).ToArray(); _rng.Shuffle(perm[j]); }
            for (int s = 0; s < strata; s++) starts.Add(lo.Select((l, j) => l + (perm[j][s] + _rng.NextDouble()) / strata * (hi[j] - l)).ToArray());
            for (int s = 0; s < strata / 4; s++) starts.Add(lo.Select((l, j) => l + _rng.NextDouble() * (hi[j] - l)).ToArray());

            var scored = new List<(double v, double[] x)>(starts.Count);
            foreach (var x in starts)
            {
                if (ct.IsCancellationRequested) return null;
                double v = _chain.Margin(x, cm, d, null, 0, _scratch);
                if (v <= 0 && _p.Confirm(c, ToBoxFloat(c, x)) is { } cex) return cex;
                scored.Add((v, x));
            }
            scored.Sort((a, b) => a.v.CompareTo(b.v));
            foreach (var (_, x) in scored.Take(descents))
            {
                if (ct.IsCancellationRequested) return null;
                if (Descend(c, cm, d, x, lo, hi, steps) is { } cex) return cex;
            }
            return null;
        }

        /// <summary>
        /// Projected descent with momentum from <paramref name="x"/> inside [lo, hi]: each step moves every input by
        /// η_t·width·m/max|m| (m the momentum of the box-scaled gradient), η_t falling from 0.25 to 0.0025 on a cosine;
        /// the row weights sharpen as the loss nears 0. Confirms every point with loss ≤ 0 and keeps going if the
        /// runtime disagrees (a little further in, float32 agrees).
        /// </summary>
        private (float[] x, float[] y)? Descend(VnnCase c, double[] cm, double[] d, double[] x, double[] lo, double[] hi, int steps)
        {
            int n = x.Length;
            var g = new double[n]; var m = new double[n];
            double best = double.PositiveInfinity; int stale = 0;
            for (int t = 0; t < steps; t++)
            {
                double v = _chain.Margin(x, cm, d, g, 0.05 * Math.Abs(best == double.PositiveInfinity ? 1 : best) + 1e-9, _scratch);
                if (v <= 0 && _p.Confirm(c, ToBoxFloat(c, x)) is { } cex) return cex;
                if (v < best - 1e-9 * (1 + Math.Abs(best))) { best = v; stale = 0; }
                else if (++stale >= 12) return null; // stuck: leave the budget to other starts
                double gmax = 0;
                for (int j = 0; j < n; j++) { g[j] *= hi[j] - lo[j]; gmax = Math.Max(gmax, Math.Abs(g[j])); }
                if (gmax == 0) return null; // flat: no direction to follow
                double mmax = 0;
                for (int j = 0; j < n; j++) { m[j] = 0.6 * m[j] + g[j] / gmax; mmax = Math.Max(mmax, Math.Abs(m[j])); }
                double eta = 0.0025 + 0.2475 * 0.5 * (1 + Math.Cos(Math.PI * t / steps));
                for (int j = 0; j < n; j++) x[j] = Math.Clamp(x[j] - eta * (hi[j] - lo[j]) * m[j] / mmax, lo[j], hi[j]);
            }
            return null;
        }
    }
}
