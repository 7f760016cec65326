namespace Gate.Core.Simulation;

/// <summary>
/// The portable generator the gridworld spec defines (specs/gridworlds.md §1), so that a seeded episode is the
/// same here as in the reference implementation.
/// </summary>
public sealed class SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong NextU64()
    {
        unchecked
        {
            _state += 0x9E3779B97F4A7C15UL;
            ulong z = _state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>A double in [0, 1) from the top 53 bits.</summary>
    public double Uniform() => (NextU64() >> 11) * (1.0 / (1UL << 53));
}
