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
    /// <summary>
    /// Inputs per batched pass at most: the classes are searched a chunk at a time, so what is held (the inputs and
    /// two Adam moments of the chunk, and the engine's activations for one pass) does not grow with the class count
    /// (a 1000-class head × 8 starts at once ran out of memory). Each class keeps only its best margin and input.
    /// </summary>
    public const int MaxBatch = 128;

    /// <returns>per class the best margin, and the fewest steps any chunk ran (fewer than asked when the wall-time budget cut it short)</returns>
    public static (ClassMargin[] Margins, int StepsRun) Run(CheckContext ctx, int classes, int[] sampleShape, double lo, double hi, int starts, int steps,
        ulong seed, Stopwatch clock, TimeSpan deadline, CancellationToken ct)
    {
        int d = sampleShape.Aggregate(1, (a, b) => a * b);
        int perChunk = Math.Max(1, MaxBatch / Math.Max(1, starts));
        // One generator across the chunks in class order: the starts are the same as one batch over all classes would draw.
        var rng = MechanisticData.Rng(seed);
        var result = new ClassMargin[classes];
        int fewest = steps;
        for (int first = 0; first < classes; first += perChunk)
        {
            int count = Math.Min(perChunk, classes - first), chunksLeft = (classes - first + perChunk - 1) / perChunk;
            // The remaining budget is shared evenly by the chunks still to run, so a cut leaves every class searched a little.
            var chunkDeadline = clock.Elapsed + (deadline - clock.Elapsed) / chunksLeft;
            int ran = RunChunk(ctx, first, count, sampleShape, d, lo, hi, starts, steps, rng, clock, chunkDeadline, result, ct);
            fewest = Math.Min(fewest, ran);
        }
        return (result, fewest);
    }

    private static int RunChunk(CheckContext ctx, int firstClass, int count, int[] sampleShape, int d, double lo, double hi, int starts, int steps,
        Random rng, Stopwatch clock, TimeSpan deadline, ClassMargin[] result, CancellationToken ct)
    {
        int batch = count * starts;
        var x = new double[batch * d];
        for (int i = 0; i < x.Length; i++) x[i] = lo + (hi - lo) * rng.NextDouble();
        var best = Enumerable.Repeat(double.NegativeInfinity, batch).ToArray();
        var bestX = new float[batch * d];
        var m = new double[x.Length]; var v = new double[x.Length];
        var xf = new float[x.Length];
        double lr = 0.05 * (hi - lo);
        string input = ctx.Engine.InputNames.Contains(ctx.PrimaryInput.Name) ? ctx.PrimaryInput.Name : ctx.Engine.InputNames[0], output = ctx.PrimaryOutput;
        int[] shape = [batch, .. sampleShape];
        int step;
        for (step = 0; step < steps; step++)
        {
            // The first step always runs: it scores the random starts, so every class has a finite margin.
            if (step > 0 && clock.Elapsed > deadline) break;
            ct.ThrowIfCancellationRequested();
            for (int i = 0; i < x.Length; i++) xf[i] = (float)x[i];
            using var pass = ctx.Engine.Forward(new Dictionary<string, Tensor> { [input] = Tensor.FromFloats(shape, xf) }, [output], recordForBackward: true);
            var logits = pass[output].ToFloatArray();
            int k = logits.Length / batch;
            var seedGrad = new float[logits.Length];
            for (int b = 0; b < batch; b++)
            {
                int cls = firstClass + b / starts, rival = -1;
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
        for (int c = 0; c < count; c++)
        {
            int arg = c * starts;
            for (int s = 1; s < starts; s++) if (best[c * starts + s] > best[arg]) arg = c * starts + s;
            result[firstClass + c] = new ClassMargin(firstClass + c, best[arg], bestX.AsSpan(arg * d, d).ToArray());
        }
        return step;
    }
}
