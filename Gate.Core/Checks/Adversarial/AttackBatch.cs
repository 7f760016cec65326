using Gate.Core.Engine;
using Gate.Core.Tensors;

namespace Gate.Core.Checks.Adversarial;

/// <summary>
/// How the search reaches the model: logits from a session (production runtime for black-box methods) and, for
/// white-box methods, loss gradients from the built-in engine.
/// </summary>
public sealed class ModelOracle(Func<IReadOnlyDictionary<string, Tensor>, Tensor> logits, IWhiteBoxEngine? engine, string inputName, string outputName, int[] sampleShape,
    Func<IReadOnlyList<long>, IReadOnlyDictionary<string, Tensor>>? heldInputs = null)
{
    public int[] SampleShape { get; } = sampleShape;
    public bool HasGradients => engine is not null;
    /// <summary>Wall time of every forward + input-gradient pass, the first apart (a timing, never part of a shard's digest).</summary>
    public GradientPassTimes GradientTimes { get; } = new();

    /// <summary>
    /// The model feed for perturbed points of the given samples: the perturbed input, and every other input of a
    /// multi-input model held at those samples' own values (<paramref name="heldInputs"/>).
    /// </summary>
    private Dictionary<string, Tensor> Feed(float[] xs, IReadOnlyList<long> samples)
    {
        var feed = heldInputs is null ? new Dictionary<string, Tensor>() : new Dictionary<string, Tensor>(heldInputs(samples));
        feed[inputName] = Tensor.FromFloats([samples.Count, .. SampleShape], xs);
        return feed;
    }

    public float[] Logits(float[] xs, IReadOnlyList<long> samples) => logits(Feed(xs, samples)).ToFloatArray();

    /// <summary>Logits and d(objective)/d(input) for a batch, the objective's gradient w.r.t. the logits given by <paramref name="seed"/>.</summary>
    public (float[] Logits, float[] Grad) Gradient(float[] xs, IReadOnlyList<long> samples, Func<float[], float[]> seed)
    {
        var e = engine ?? throw new InvalidOperationException("this oracle has no gradients (black-box)");
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        using var pass = e.Forward(Feed(xs, samples), [outputName], recordForBackward: true);
        var z = pass[outputName];
        var lf = z.ToFloatArray();
        var g = e.Backward(pass, new Dictionary<string, Tensor> { [outputName] = Tensor.FromFloats(z.Shape, seed(lf)) }, [inputName])[inputName];
        var grad = g.ToFloatArray();
        GradientTimes.Add(System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        return (lf, grad);
    }
}

/// <summary>
/// The first gradient pass and the rest, timed apart: the first pays the engine's one-time costs (allocator growth,
/// kernel selection), so "ms per step" of a long search is the later passes' mean, not the check's wall time divided
/// by its steps. Benchmarks read it (docs/benchmarks/torch.md); it judges nothing.
/// </summary>
public sealed class GradientPassTimes
{
    private readonly object _gate = new();
    public long Count { get; private set; }
    public double FirstMs { get; private set; }
    public double LaterMs { get; private set; }

    public void Add(double ms)
    {
        lock (_gate)
        {
            if (Count++ == 0) FirstMs = ms;
            else LaterMs += ms;
        }
    }

    public System.Text.Json.Nodes.JsonObject ToJson() => new()
    {
        ["count"] = Count, ["firstMs"] = Math.Round(FirstMs, 3), ["laterMs"] = Math.Round(LaterMs, 3),
        ["laterMeanMs"] = Count > 1 ? Math.Round(LaterMs / (Count - 1), 3) : null,
    };
}

/// <summary>
/// The samples one method attacks at one ε, and the only door to the model: every evaluation is charged to the
/// global budget (k samples = k queries) and to the method, and every evaluated point that is admitted by the
/// threat model and meets the goal is recorded as found. Methods therefore cannot miscount or miss a success.
/// </summary>
public sealed class AttackBatch
{
    private readonly ModelOracle _oracle;
    private readonly QueryBudget _budget;
    private readonly ulong _seed;
    private readonly long _stream;
    private readonly long[] _sampleIds;
    private readonly Action? _onProgress;

    public AttackBatch(ThreatModel threat, AttackGoal goal, IReadOnlyList<float[]> clean, long[] labels, long[] sampleIds,
        ModelOracle oracle, QueryBudget budget, MethodUsage usage, ulong seed, long stream, Action? onProgress = null)
    {
        Threat = threat; Goal = goal; Clean = clean; Labels = labels; _sampleIds = sampleIds;
        _oracle = oracle; _budget = budget; Usage = usage; _seed = seed; _stream = stream; _onProgress = onProgress;
        Dim = clean.Count > 0 ? clean[0].Length : 0;
        Found = new float[]?[clean.Count];
        Completed = new bool[clean.Count];
    }

    public ThreatModel Threat { get; }
    public AttackGoal Goal { get; }
    public IReadOnlyList<float[]> Clean { get; }
    public long[] Labels { get; }
    public int Count => Clean.Count;
    public int Dim { get; }
    public int[] SampleShape => _oracle.SampleShape;
    public MethodUsage Usage { get; }
    /// <summary>The first admitted point found per sample that meets the goal (as evaluated by this batch's model).</summary>
    public float[]?[] Found { get; }
    /// <summary>True where the method spent its full per-sample budget (or found a violation).</summary>
    public bool[] Completed { get; }
    public bool IsOpen(int i) => Found[i] is null;
    public IEnumerable<int> OpenRows => Enumerable.Range(0, Count).Where(IsOpen);

    /// <summary>The random stream of one sample and restart: independent of batching, order and other samples.</summary>
    public AttackRng Rng(int row, int restart) => AttackRng.ForStream(_seed, _stream, _sampleIds[row], restart);

    private long[] SamplesOf(IReadOnlyList<int> rows) => rows.Select(r => _sampleIds[r]).ToArray();

    /// <summary>Marks rows completed: those whose search ran to its end, and any already found.</summary>
    public void Complete(IEnumerable<int> rows) { foreach (var r in rows) Completed[r] = true; }

    /// <summary>Logits of points xs (rows.Count × Dim) for the given rows; null when the budget refuses.</summary>
    public float[]? Logits(IReadOnlyList<int> rows, float[] xs)
    {
        if (!_budget.TryTake(rows.Count)) return null;
        Usage.Queries += rows.Count;
        var z = _oracle.Logits(xs, SamplesOf(rows));
        Record(rows, xs, z);
        return z;
    }

    /// <summary>Logits, cross-entropy objective (to maximise) and its input gradient; null when the budget refuses.</summary>
    public (float[] Logits, double[] Loss, float[] Grad)? CrossEntropyGradient(IReadOnlyList<int> rows, float[] xs)
    {
        if (!_budget.TryTake(rows.Count)) return null;
        Usage.Queries += rows.Count;
        Usage.Gradients += rows.Count;
        var loss = new double[rows.Count];
        var (z, g) = _oracle.Gradient(xs, SamplesOf(rows), lf =>
        {
            int k = lf.Length / rows.Count;
            var seed = new float[lf.Length];
            for (int j = 0; j < rows.Count; j++)
                loss[j] = Goal.CrossEntropy(lf.AsSpan(j * k, k), Labels[rows[j]], seed.AsSpan(j * k, k));
            return seed;
        });
        Record(rows, xs, z);
        return (z, loss, g);
    }

    private void Record(IReadOnlyList<int> rows, float[] xs, float[] logits)
    {
        int k = logits.Length / Math.Max(1, rows.Count);
        for (int j = 0; j < rows.Count; j++)
        {
            int r = rows[j];
            var x = xs.AsSpan(j * Dim, Dim);
            if (Found[r] is null && Goal.IsMet(logits.AsSpan(j * k, k), Labels[r]) && Threat.Admits(Clean[r], x))
            {
                Found[r] = x.ToArray();
                Completed[r] = true;
            }
        }
        _onProgress?.Invoke();
    }

    /// <summary>Copies the given rows' points into one contiguous batch.</summary>
    public float[] Stack(IReadOnlyList<int> rows, Func<int, float[]> point)
    {
        var xs = new float[rows.Count * Dim];
        for (int j = 0; j < rows.Count; j++) point(rows[j]).CopyTo(xs, j * Dim);
        return xs;
    }
}
