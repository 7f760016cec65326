namespace Gate.Core.Numerics;

/// <summary>Seeded random permutations: the one shuffle behind sample choice, k-fold splits and surrogate splits.</summary>
public static class Permutation
{
    /// <summary>Fisher–Yates permutation of 0..n−1.</summary>
    public static int[] Of(int n, Random rng)
    {
        var p = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--) { int j = rng.Next(i + 1); (p[i], p[j]) = (p[j], p[i]); }
        return p;
    }
}
