using System.Collections.Concurrent;
using System.Diagnostics;

namespace Gate.Core.Engine;

/// <summary>
/// Wall time per operator and shape, forward and backward, for finding what dominates a model's passes
/// (docs/benchmarks/engine.md). Off unless GATE_ENGINE_PROFILE=1, and then printed to stderr at process exit, most
/// expensive first; a static readonly switch, so the JIT removes the timing when it is off.
/// </summary>
internal static class EngineProfile
{
    public static readonly bool On = Environment.GetEnvironmentVariable("GATE_ENGINE_PROFILE") == "1";
    private static readonly ConcurrentDictionary<string, long[]> Totals = new(StringComparer.Ordinal);

    static EngineProfile()
    {
        if (On) AppDomain.CurrentDomain.ProcessExit += (_, _) => Console.Error.Write(Report());
    }

    public static void Add(string pass, string opType, Tensors.Tensor? input, long startTimestamp)
    {
        long ticks = Stopwatch.GetTimestamp() - startTimestamp;
        var key = $"{pass} {opType} {input?.ShapeString}";
        var t = Totals.GetOrAdd(key, _ => new long[2]);
        Interlocked.Add(ref t[0], ticks);
        Interlocked.Increment(ref t[1]);
    }

    public static string Report()
    {
        var sb = new System.Text.StringBuilder("engine profile (ms total, calls, operator and first input shape):\n");
        double total = Totals.Values.Sum(v => v[0]) * 1000.0 / Stopwatch.Frequency;
        foreach (var g in Totals.GroupBy(kv => string.Join(' ', kv.Key.Split(' ').Take(2))).OrderByDescending(g => g.Sum(kv => kv.Value[0])))
            sb.Append($"  {g.Sum(kv => kv.Value[0]) * 1000.0 / Stopwatch.Frequency,10:0.0} ms {100 * g.Sum(kv => kv.Value[0]) * 1000.0 / Stopwatch.Frequency / total,5:0.0}%  {g.Key}\n");
        foreach (var (key, v) in Totals.OrderByDescending(kv => kv.Value[0]).Take(40))
            sb.Append($"  {v[0] * 1000.0 / Stopwatch.Frequency,10:0.0} ms {v[1],6}  {key}\n");
        return sb.ToString();
    }
}
