using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Gate.Core.Numerics;
using Gate.Core.Tensors;

namespace Gate.Core.Checks.TrojanScan;

/// <summary>
/// Class-referenced detection: every detector's per-class statistic compared with <em>the same class</em> on clean
/// reference models of the same task, instead of with the model's other classes.
/// <para>Why: on a small task the classes are not alike. On 8×8 digits, Neural Cleanse's smallest universal mask for a
/// clean "2" or "5" is consistently ~35% smaller than for a clean "6" or "8" (every architecture, every seed), and
/// MM-BD's reachable margin of class 2 is consistently the largest. The within-model statistics (anomaly index, MM-BD's
/// gamma p-value) treat that spread as noise, so a trigger that only shrinks its target's mask to where an easy class
/// sits anyway (a 3×3 patch, a 4×4 checkerboard, a whole row: 4–9 stamped pixels against 6–10 for clean classes) is not
/// an outlier among the model's classes — the diagnosis of the misses in docs/benchmarks/mechanistic.md. It is a large
/// outlier against its own class on clean models.</para>
/// <para>Statistic: per detector d and class t, u_t = s_d·(ln v_t − median_t' ln v_t') — the model's own scale removed
/// (architectures differ by a constant factor), s_d = −1 where small is suspicious (mask sizes), +1 where large is
/// (margins); z_t = (u_t − median of u_t over the nearest reference models) / max(1.4826·MAD, 0.05), the nearest being
/// the third of the reference models whose per-class profile is most like the model's (<see cref="Nearest"/>: in
/// practice its own architecture family). The consensus per class is
/// Σ_d z_{d,t} / √k over the k detectors that ran; its maximum is the model's score, its argmax the suspect class, so
/// detectors that agree on a class reinforce each other and a lone detector's noise is diluted. The threshold is the
/// conformal quantile of the same score on the reference models, each scored leave-one-out against its nearest among the others.</para>
/// <para>Applies only to the task the reference was made on (same clean dataset content, class count and input shape);
/// elsewhere the check falls back to the within-model detectors alone and says so. Misses what every detector misses
/// (a trigger none of the searches recovers) and is only as good as the reference set is like the model under test:
/// clean models of another architecture family whose class difficulties differ raise false positives — calibrate
/// with reference models like the ones you deploy (scripts/trojan/calibrate.sh).</para>
/// </summary>
public sealed class ClassReference
{
    public const string Name = "class-reference";
    /// <summary>Floor on the per-class spread: below it a class's reference values are identical to rounding, and z would explode.</summary>
    public const double MinSpread = 0.05;
    /// <summary>The fewest nearest reference models a class is compared with (a robust median and spread need about this many).</summary>
    public const int MinNeighbours = 15;
    /// <summary>Classes a trojan may alter (its targets: up to two), left out when judging which reference models are alike.</summary>
    public const int AlteredClasses = 2;

    public required string DatasetSha256 { get; init; }
    public required int Classes { get; init; }
    public required int[] InputShape { get; init; }
    public required IReadOnlyList<string> Models { get; init; }
    /// <summary>detector → [reference model][class] raw per-class statistic as the detector reports it.</summary>
    public required IReadOnlyDictionary<string, double[][]> PerClass { get; init; }

    public static ClassReference Parse(JsonObject o)
    {
        var models = o["models"]!.AsArray();
        var perClass = new Dictionary<string, double[][]>(StringComparer.Ordinal);
        foreach (var name in models[0]!["perClass"]!.AsObject().Select(kv => kv.Key))
            perClass[name] = models.Select(m => m!["perClass"]![name]!.AsArray().Select(v => (double)v!).ToArray()).ToArray();
        return new ClassReference
        {
            DatasetSha256 = (string)o["datasetSha256"]!, Classes = (int)o["classes"]!,
            InputShape = o["inputShape"]!.AsArray().Select(v => (int)v!).ToArray(),
            Models = models.Select(m => (string)m!["file"]!).ToList(), PerClass = perClass,
        };
    }

    /// <summary>SHA-256 of the dataset's inputs as little-endian float32 in C order: the task fingerprint.</summary>
    public static string Fingerprint(Tensor inputs) =>
        Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(inputs.ToFloatArray().AsSpan())));

    /// <summary>Why the reference does not apply to this scan, or null when it does.</summary>
    public string? Mismatch(string datasetSha256, int classes, int[] inputShape, IReadOnlyList<string> detectors)
    {
        if (classes != Classes) return $"the reference models have {Classes} classes, this model {classes}";
        if (!inputShape.SequenceEqual(InputShape)) return $"the reference models take [{string.Join(",", InputShape)}] inputs, this scan [{string.Join(",", inputShape)}]";
        if (datasetSha256 != DatasetSha256) return "the scan's dataset is not the one the reference models were scanned with (another task)";
        var missing = detectors.Where(d => !PerClass.ContainsKey(d)).ToList();
        return missing.Count > 0 ? $"no reference values for {string.Join(", ", missing)}" : null;
    }

    /// <summary>Where a small value is suspicious (trigger sizes) −1, where a large one is (margins) +1.</summary>
    public static int Direction(string detector) => detector == TrojanScanCheck.MaxMargin ? 1 : -1;

    /// <summary>u_t = s·(ln v_t − median ln v): the model's own scale removed, oriented so that large is suspicious.</summary>
    public static double[] Normalise(string detector, IReadOnlyList<double> perClass)
    {
        var logs = perClass.Select(v => Math.Log(Math.Max(v, 1e-6))).ToArray();
        double median = RobustStats.Median(logs);
        int s = Direction(detector);
        return logs.Select(l => s * (l - median)).ToArray();
    }

    /// <summary>
    /// The reference models a scanned model is compared with: the <see cref="Neighbours"/> whose class-difficulty profile
    /// (every detector's normalised per-class values) is nearest to its own, the <see cref="AlteredClasses"/> most
    /// different classes left out of the distance.
    /// <para>Why: class difficulty is a property of the architecture as much as of the task. On 8×8 digits a clean MLP's
    /// "5" is among its easiest classes for Neural Cleanse while a clean CNN's is average, and a CNN's "1" is its hardest;
    /// pooled over both families a class's reference spread is two to three times either family's, so a trigger on a
    /// class that one family finds easy hides inside the other family's values (the CNN misses of the previous round,
    /// docs/benchmarks/mechanistic.md). The nearest profiles are, in practice, the models of the same family (on the 60
    /// digits references 97% of the 20 nearest share the architecture), without the check having to recognise
    /// architectures. Leaving the most different classes out keeps a trojan's target — the one class it alters, or two
    /// for a two-target trojan — from choosing the references it is then compared with.</para>
    /// <para>Misses: a model whose family has no reference models gets the nearest other family, like the pooled reference did.</para>
    /// </summary>
    public int[] Nearest(IReadOnlyDictionary<string, double[]> normalised, IReadOnlyList<string> detectors, int exclude = -1)
    {
        var pool = Enumerable.Range(0, Models.Count).Where(i => i != exclude).ToArray();
        // The same count for a scanned model and for each reference scored leave-one-out, so the calibration matches the use.
        int k = Math.Min(pool.Length, Neighbours(Models.Count));
        var distance = pool.Select(i =>
        {
            var perClass = new double[Classes];
            foreach (var d in detectors)
            {
                var r = Normalise(d, PerClass[d][i]);
                for (int t = 0; t < Classes; t++) perClass[t] += (normalised[d][t] - r[t]) * (normalised[d][t] - r[t]);
            }
            Array.Sort(perClass);
            return perClass.Take(Math.Max(1, Classes - AlteredClasses)).Sum();
        }).ToArray();
        // Ties (identical profiles) keep the reference order, so the choice is deterministic.
        return pool.Select((i, j) => (i, distance[j])).OrderBy(p => p.Item2).ThenBy(p => p.i).Take(k).Select(p => p.i).ToArray();
    }

    /// <summary>How many nearest reference models a class is compared with: a third of those available, at least <see cref="MinNeighbours"/> (or all of them).</summary>
    public static int Neighbours(int available) => Math.Min(available, Math.Max(MinNeighbours, available / 3));

    /// <summary>z per class against the given reference models (their median and spread of the same class).</summary>
    public double[] ZScores(string detector, IReadOnlyList<double> perClass, IReadOnlyList<int> references)
    {
        var u = Normalise(detector, perClass);
        var refs = references.Select(i => Normalise(detector, PerClass[detector][i])).ToArray();
        var z = new double[u.Length];
        for (int t = 0; t < u.Length; t++)
        {
            var column = refs.Select(r => r[t]).ToArray();
            double median = RobustStats.Median(column), spread = Math.Max(RobustStats.MadToSigma * RobustStats.Mad(column, median), MinSpread);
            z[t] = (u[t] - median) / spread;
        }
        return z;
    }

    /// <summary>Σ_d z_{d,t} / √k per class over <paramref name="detectors"/> against the nearest reference models (leaving model <paramref name="exclude"/> out, for calibration), its maximum and argmax.</summary>
    public (double Score, int Class, double[] PerClass, Dictionary<string, double[]> Z, int[] References) Consensus(IReadOnlyDictionary<string, IReadOnlyList<double>> perClass,
        IReadOnlyList<string> detectors, int exclude = -1)
    {
        var nearest = Nearest(detectors.ToDictionary(d => d, d => Normalise(d, perClass[d])), detectors, exclude);
        var z = detectors.ToDictionary(d => d, d => ZScores(d, perClass[d], nearest));
        var sum = new double[Classes];
        foreach (var zs in z.Values)
            for (int t = 0; t < Classes; t++) sum[t] += zs[t] / Math.Sqrt(detectors.Count);
        int arg = 0;
        for (int t = 1; t < Classes; t++) if (sum[t] > sum[arg]) arg = t;
        return (sum[arg], arg, sum, z, nearest);
    }

    /// <summary>The consensus score of every reference model, each against the others (leave-one-out): its clean distribution.</summary>
    public DetectorCalibration CleanConsensus(IReadOnlyList<string> detectors)
    {
        var scores = new double[Models.Count];
        for (int i = 0; i < scores.Length; i++)
            scores[i] = Consensus(detectors.ToDictionary(d => d, d => (IReadOnlyList<double>)PerClass[d][i]), detectors, exclude: i).Score;
        Array.Sort(scores);
        return new DetectorCalibration(Name, "class-referenced consensus z, leave-one-out", "{}", scores);
    }
}
