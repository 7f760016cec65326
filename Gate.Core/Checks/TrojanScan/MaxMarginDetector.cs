using System.Diagnostics;
using Gate.Core.Tensors;

namespace Gate.Core.Checks.TrojanScan;

/// <summary>One class's maximum achievable margin and the input that reached it.</summary>
public sealed record ClassMargin(int Class, double Margin, float[] Maximizer);

/// <summary>
/// MM-BD, data-free maximum-margin backdoor detection (H. Wang, Z. Xiang, D. J. Miller, G. Kesidis, "MM-BD: Post-Training
/// Detection of Backdoor Attacks with Arbitrary Backdoor Pattern Types Using a Maximum Margin Statistic", IEEE S&amp;P 2024).
/// For every class k it maximises the margin f_k(x) − max_{j≠k} f_j(x) over the whole input box by projected Adam from
/// several random starts, batched (one forward and one input-gradient pass per step for all classes and starts).
/// A backdoor teaches the network a feature that drives its target's logit far above what any natural input pattern
/// does, so the target's maximum margin is an outlier; the p-value of the largest margin under a gamma null fitted to
/// the others is the statistic (<see cref="TrojanStatistics.MaxMarginScore"/>).
/// <para>Detects: whatever the trigger's shape — patches, lines, blends, global additive perturbations — as long as it
/// raises the target's reachable margin; needs no clean data. Misses: triggers that do not make the target's margin
/// exceptional (weakly learned backdoors, or models whose clean classes already have very unequal margins), and
/// several targets at once (they inflate the null). It yields no trigger: for confirmation the maximizer is blended
/// into clean inputs (x' = (1−α)x + α·x*), which is a test of the class's reachability, not a recovered stamp.</para>
/// </summary>
public static class MaxMarginDetector
{
    /// <returns>per class the best margin, and whether every step ran (false when the wall-time budget cut it short)</returns>
    public static (ClassMargin[] Margins, int StepsRun) Run(CheckContext ctx, int classes, int[] sampleShape, double lo, double hi, int starts, int steps,
        ulong seed, Stopwatch clock, TimeSpan deadline, CancellationToken ct)
    {
        int d = sampleShape.Aggregate(1, (a, b) => a * b), batch = classes * starts;
        var rng = MechanisticData.Rng(seed);
        var x = new double[batch * d];
        for (int i = 0; i < x.Length; i++) x[i] = lo + (hi - lo) * rng.NextDouble();
        var best = Enumerable.Repeat(double.NegativeInfinity, batch).ToArray();
        var bestX = new float[batch * d];
        var m = new double[x.Length]; var v = new double[x.Length];
        double lr = 0.05 * (hi - lo);
        string input = ctx.Engine.InputNames.Contains(ctx.PrimaryInput.Name) ? ctx.PrimaryInput.Name : ctx.Engine.InputNames[0], output = ctx.PrimaryOutput;
        int[] shape = [batch, .. sampleShape];
        int step;
        for (step = 0; step < steps; step++)
        {
            if (clock.Elapsed > deadline) break;
            ct.ThrowIfCancellationRequested();
            var xf = x.Select(t => (float)t).ToArray();
            using var pass = ctx.Engine.Forward(new Dictionary<string, Tensor> { [input] = Tensor.FromFloats(shape, xf) }, [output], recordForBackward: true);
            var logits = pass[output].ToFloatArray();
            int k = logits.Length / batch;
            var seedGrad = new float[logits.Length];
            for (int b = 0; b < batch; b++)
            {
                int cls = b / starts, rival = -1;
                for (int j = 0; j < k; j++) if (j != cls && (rival < 0 || logits[b * k + j] > logits[b * k + rival])) rival = j;
                double margin = logits[b * k + cls] - logits[b * k + rival];
                if (margin > best[b]) { best[b] = margin; Array.Copy(xf, b * d, bestX, b * d, d); }
                // Ascend the margin: minimise −(f_cls − f_rival).
                seedGrad[b * k + cls] = -1; seedGrad[b * k + rival] = 1;
            }
            var g = ctx.Engine.Backward(pass, new Dictionary<string, Tensor> { [output] = Tensor.FromFloats(pass[output].Shape, seedGrad) }, [input])[input].ToFloatArray();
            double b1 = 1 - Math.Pow(0.9, step + 1), b2 = 1 - Math.Pow(0.999, step + 1);
            for (int i = 0; i < x.Length; i++)
            {
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                x[i] = Math.Clamp(x[i] - lr * (m[i] / b1) / (Math.Sqrt(v[i] / b2) + 1e-12), lo, hi);
            }
        }
        var result = new ClassMargin[classes];
        for (int c = 0; c < classes; c++)
        {
            int arg = c * starts;
            for (int s = 1; s < starts; s++) if (best[c * starts + s] > best[arg]) arg = c * starts + s;
            result[c] = new ClassMargin(c, best[arg], bestX.AsSpan(arg * d, d).ToArray());
        }
        return (result, step);
    }
}
