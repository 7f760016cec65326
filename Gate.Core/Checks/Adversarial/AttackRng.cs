namespace Gate.Core.Checks.Adversarial;

/// <summary>
/// xoshiro256** seeded through SplitMix64: a small, fully specified generator, so the policy seed reproduces every
/// random start and proposal bit for bit on any machine (unlike <see cref="Random"/>, whose algorithm may change).
/// </summary>
public sealed class AttackRng
{
    private ulong _s0, _s1, _s2, _s3;

    public AttackRng(ulong seed)
    {
        ulong sm = seed;
        _s0 = SplitMix(ref sm); _s1 = SplitMix(ref sm); _s2 = SplitMix(ref sm); _s3 = SplitMix(ref sm);
    }

    /// <summary>A generator for one independent stream (e.g. sample × method × restart), so results never depend on batching or order.</summary>
    public static AttackRng ForStream(ulong seed, params ReadOnlySpan<long> keys)
    {
        ulong h = seed;
        foreach (var k in keys) { h ^= (ulong)k + 0x9E3779B97F4A7C15UL + (h << 6) + (h >> 2); h = SplitMix(ref h); }
        return new AttackRng(h);
    }

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextULong()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n) (Lemire's multiply-shift; the bias is below 2^-32 for the sizes used here).</summary>
    public int NextInt(int n) => (int)(((NextULong() >> 32) * (ulong)n) >> 32);

    public float NextSign() => (NextULong() >> 63) == 0 ? -1f : 1f;

    /// <summary>Standard normal (Box–Muller; one value per call keeps the stream simple to reason about).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(), u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
