using System.Collections.Concurrent;

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
    /// The restart attack each chain search opens with: the falsifier's multi-start search over the case's box with
    /// <paramref name="restarts"/> descents (see <see cref="Falsifier"/>), the running property's falsifier when there
    /// is one, else one seeded from the prover's seed and <paramref name="seedSalt"/>.
    /// </summary>
    internal (float[] x, float[] y)? RestartAttack(VnnCase c, ReluChain chain, double[] cm, double[] d, int restarts, int seedSalt, CancellationToken ct) =>
        (_falsifier is { } f && f.Covers(c) ? f : new Falsifier(this, chain, [c], seedSalt)).Search(c, restarts, ct);

    private (ProofStatus status, (float[] x, float[] y)? cex, long domains, string why) DecideByInputSplit(VnnCase c, ReluChain chain, CancellationToken ct)
    {
        var (cm, d) = Spec(c, chain.OutputSize);
        int n = chain.InputSize, rows = d.Length, outs = chain.OutputSize;
        if (RestartAttack(c, chain, cm, d, _o.ChainAttackRestarts, seedSalt: 7, ct) is { } cex0) return (ProofStatus.Sat, cex0, 0, "");

        var stack = new ConcurrentStack<double[]>(); // a box: lower (n) then upper (n)
        stack.Push([.. c.InputLower, .. c.InputUpper]);
        long domains = 0; int busy = 0, unknown = 0;
        (float[] x, float[] y)? found = null;
        Exception? failure = null;
        string why = "";
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        int batch = Math.Max(1, _o.InputSplitBatch);

        void Work()
        {
            var taken = new double[batch][];
            var lo = new double[batch * n]; var hi = new double[batch * n];
            var centre = new double[n];
            while (!stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref busy);
                // Share the work: while the stack is shallow take few boxes, so that the other worker has some.
                int want = Math.Clamp(stack.Count / Math.Max(1, _o.Workers), 1, batch);
                int k = stack.TryPopRange(taken, 0, want);
                if (k == 0)
                {
                    Interlocked.Decrement(ref busy);
                    if (Volatile.Read(ref busy) == 0 && stack.IsEmpty) return;
                    Thread.Sleep(1);
                    continue;
                }
                try
                {
                    Interlocked.Add(ref domains, k);
                    for (int b = 0; b < k; b++) { Array.Copy(taken[b], 0, lo, b * n, n); Array.Copy(taken[b], n, hi, b * n, n); }
                    var bounds = chain.Bound(k, lo, hi, cm, d);
                    for (int b = 0; b < k && !stop.IsCancellationRequested; b++)
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
                            if (v <= 1e-6 && Confirm(c, ToBoxFloat(c, cand)) is { } cex) { found = cex; stop.Cancel(); return; }
                            _falsifier?.Offer(c, bl, bh, cand, v);
                        }
                        int dim = -1; double score = -1;
                        for (int j = 0; j < n; j++)
                        {
                            double w = bh[j] - bl[j];
                            if (w <= 1e-9 * (1 + Math.Abs(bl[j]))) continue;
                            double sc = (Math.Abs(lam[j]) + 1e-12) * w;
                            if (sc > score) { score = sc; dim = j; }
                        }
                        if (dim < 0)
                        {
                            Interlocked.Increment(ref unknown);
                            why = "an input box became too small to split further";
                            continue;
                        }
                        if (stack.Count >= _o.MaxOpenDomains)
                        {
                            Interlocked.Increment(ref unknown);
                            why = $"more than {_o.MaxOpenDomains} open sub-domains (memory bound)";
                            stop.Cancel();
                            return;
                        }
                        double mid = 0.5 * (bl[dim] + bh[dim]);
                        var left = new double[2 * n]; var right = new double[2 * n];
                        bl.CopyTo(left); bh.CopyTo(left.AsSpan(n)); bl.CopyTo(right); bh.CopyTo(right.AsSpan(n));
                        left[n + dim] = mid; right[dim] = mid;
                        stack.Push(left); stack.Push(right);
                    }
                    if (_falsifier?.Tick(_o.Workers, stop.Token) is { } fx) { found = fx; stop.Cancel(); return; }
                }
                catch (Exception e) when (e is not OperationCanceledException) { failure ??= e; stop.Cancel(); return; }
                finally { Interlocked.Decrement(ref busy); }
            }
        }

        var threads = Enumerable.Range(0, Math.Max(1, _o.Workers)).Select(_ => new Thread(Work) { IsBackground = true }).ToList();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        if (found is not null) return (ProofStatus.Sat, found, domains, "");
        if (failure is not null) throw new InvalidOperationException($"branch and bound failed: {failure.Message}", failure);
        if (unknown > 0) return (ProofStatus.Unknown, null, domains, why);
        if (ct.IsCancellationRequested || !stack.IsEmpty) return (ProofStatus.Timeout, null, domains, "");
        return (ProofStatus.Unsat, null, domains, "");
    }
}
