namespace Gate.Core.Numerics;

/// <summary>
/// Stratified k-fold split with a seeded shuffle: each class's samples are shuffled, then dealt to the folds in
/// turn, so every fold keeps the class proportions (to within one sample) and every sample is tested exactly once.
/// </summary>
public static class StratifiedKFold
{
    /// <summary>Fold index (0..k−1) of every sample.</summary>
    public static int[] Assign(IReadOnlyList<int> labels, int k, Random rng)
    {
        if (k < 2) throw new ArgumentOutOfRangeException(nameof(k), "k-fold needs at least 2 folds");
        if (labels.Count < k) throw new GateInputException($"{k}-fold cross-validation needs at least {k} samples, got {labels.Count}");
        var fold = new int[labels.Count];
        int next = 0; // continue dealing across classes so fold sizes stay balanced
        foreach (var cls in labels.Distinct().Order())
        {
            var members = Enumerable.Range(0, labels.Count).Where(i => labels[i] == cls).ToArray();
            var perm = Permutation.Of(members.Length, rng);
            foreach (var p in perm) { fold[members[p]] = next; next = (next + 1) % k; }
        }
        return fold;
    }
}
