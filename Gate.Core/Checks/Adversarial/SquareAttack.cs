using System.Globalization;
using Gate.Core.Policy;

namespace Gate.Core.Checks.Adversarial;

/// <summary>
/// Square attack (Andriushchenko et al. 2020): score-based random search that needs only the model's outputs, so it
/// runs on the production runtime and catches gradient masking. L∞: start from vertical stripes of ±ε, then propose
/// a random square window per step, re-drawn as ±ε per channel, kept only if the margin loss decreases; the window's
/// share of the image starts at <c>pInit</c> (default 0.3) and halves on the paper's schedule. L2 uses the same
/// window search with proposals of ±ε/√(window size) and projection onto the ball (a simplification of the paper's
/// L2 update). Cost per sample: exactly <c>queries</c> (1 for the start + 1 per proposal), fewer once broken.
/// </summary>
public sealed class SquareAttack : IAttackMethod
{
    public string Name => "square";
    public bool WhiteBox => false;

    public void Validate(MethodSpec spec)
    {
        if (spec.Steps is not null || spec.Restarts is not null || spec.StepSize is not null)
            throw PolicyException.At(spec.Node, "square is budgeted by 'queries' (and shaped by 'pInit'); steps, restarts and stepSize do not apply");
    }

    private const int DefaultQueries = 1000;
    private static int Queries(MethodSpec s) => s.Queries ?? DefaultQueries;
    public long QueriesPerSample(MethodSpec spec) => Queries(spec);
    /// <summary>Below 200 queries the search is too weak to stand for the default's.</summary>
    public (string Key, int Default, int Floor)? DefaultBudget => ("queries", DefaultQueries, 200);
    public string Describe(MethodSpec spec) => $"Square {Queries(spec)} queries" +
        (spec.PInit is { } p ? $" (p={p.ToString("G3", CultureInfo.InvariantCulture)})" : "");

    /// <summary>Window share at iteration it of n: the paper's halving schedule, written for 10 000 iterations and rescaled.</summary>
    public static double WindowShare(double pInit, int it, int n)
    {
        int i = (int)((long)it * 10000 / Math.Max(n, 1));
        int halvings = i switch { <= 10 => 0, <= 50 => 1, <= 200 => 2, <= 500 => 3, <= 1000 => 4, <= 2000 => 5, <= 4000 => 6, <= 6000 => 7, <= 8000 => 8, _ => 9 };
        return pInit / (1 << halvings);
    }

    public void Attack(AttackBatch batch, MethodSpec spec, CancellationToken ct)
    {
        int queries = Queries(spec), d = batch.Dim, n = batch.Count;
        double pInit = spec.PInit ?? 0.3, eps = batch.Threat.Epsilon;
        var threat = batch.Threat;
        // Images are [C,H,W]; anything else is searched as one row of features.
        var shape = batch.SampleShape;
        int c = shape.Length == 3 ? shape[0] : 1, h = shape.Length == 3 ? shape[1] : 1, w = d / (c * h);
        var rngs = new AttackRng[n];
        var x = new float[n][];
        var margin = new double[n];
        var rows = batch.OpenRows.ToList();
        foreach (var r in rows)
        {
            var rng = rngs[r] = batch.Rng(r, 0);
            var clean = batch.Clean[r];
            var xr = x[r] = new float[d];
            if (threat.Norm == PerturbationNorm.Linf)
                for (int ch = 0; ch < c; ch++)
                    for (int col = 0; col < w; col++)
                    {
                        float s = rng.NextSign();
                        for (int row = 0; row < h; row++) { int i = (ch * h + row) * w + col; xr[i] = (float)(clean[i] + s * eps); }
                    }
            else
            {
                double sq = 0; var g = new double[d];
                for (int i = 0; i < d; i++) { g[i] = rng.NextGaussian(); sq += g[i] * g[i]; }
                double scale = eps / Math.Sqrt(Math.Max(sq, 1e-300));
                for (int i = 0; i < d; i++) xr[i] = (float)(clean[i] + g[i] * scale);
            }
            threat.Project(clean, xr);
        }
        if (rows.Count == 0) { batch.Complete(Enumerable.Range(0, n)); return; }
        if (!Evaluate(batch, rows, x, margin)) return;
        rows.RemoveAll(r => !batch.IsOpen(r));
        for (int it = 1; it < queries && rows.Count > 0; it++)
        {
            ct.ThrowIfCancellationRequested();
            double p = WindowShare(pInit, it, queries);
            int sh, sw;
            if (h > 1) { sh = sw = Math.Clamp((int)Math.Round(Math.Sqrt(p * h * w)), 1, Math.Max(1, Math.Min(h, w) - 1)); }
            else { sh = 1; sw = Math.Clamp((int)Math.Round(p * w), 1, w); }
            var proposal = new float[n][];
            foreach (var r in rows)
            {
                var rng = rngs[r];
                var clean = batch.Clean[r];
                var xn = proposal[r] = (float[])x[r].Clone();
                int top = rng.NextInt(h - sh + 1), left = rng.NextInt(w - sw + 1);
                double size = threat.Norm == PerturbationNorm.Linf ? eps : eps / Math.Sqrt(c * sh * sw);
                for (int ch = 0; ch < c; ch++)
                {
                    float s = rng.NextSign();
                    for (int i = top; i < top + sh; i++)
                        for (int j = left; j < left + sw; j++) { int k = (ch * h + i) * w + j; xn[k] = (float)(clean[k] + s * size); }
                }
                threat.Project(clean, xn);
            }
            var trial = new double[n];
            if (!Evaluate(batch, rows, proposal, trial)) return;
            foreach (var r in rows)
                if (trial[r] < margin[r]) { margin[r] = trial[r]; x[r] = proposal[r]; }
            rows.RemoveAll(r => !batch.IsOpen(r));
        }
        batch.Complete(Enumerable.Range(0, n));
    }

    private static bool Evaluate(AttackBatch batch, List<int> rows, float[][] points, double[] margins)
    {
        if (batch.Logits(rows, batch.Stack(rows, r => points[r])) is not { } z) return false;
        int k = z.Length / rows.Count;
        for (int j = 0; j < rows.Count; j++) margins[rows[j]] = batch.Goal.Margin(z.AsSpan(j * k, k), batch.Labels[rows[j]]);
        return true;
    }
}
