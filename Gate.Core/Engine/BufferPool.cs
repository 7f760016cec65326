using System.Collections.Concurrent;

namespace Gate.Core.Engine;

/// <summary>
/// Exact-size float arrays recycled between forward passes of one <see cref="CompiledModel"/>. A batch-256 CNN
/// otherwise allocates megabytes of large-object-heap intermediates per call, and each call then pays a gen-2 GC.
/// Arrays are exact-size (not ArrayPool's rounded-up ones) because a tensor's length is its array's length to
/// much of the code that reads it.
/// </summary>
internal sealed class BufferPool
{
    /// <summary>
    /// Free arrays kept per length: a recording pass of a ResNet holds ~30 activations of one shape until its backward,
    /// and with 8 kept the next pass allocated (and the GC collected) the other ~22 every time — ResNet-18 at 32×32,
    /// batch 32: forward + input gradient 827–851 ms median with 8, 551–564 ms with 64, peak RSS 980–1020 vs 730 MiB.
    /// </summary>
    internal const int KeepPerLength = 64;

    /// <summary>At most this much is kept free in all, so a pool never holds more than a large pass's working set.</summary>
    internal const long MaxFreeBytes = 2L << 30;

    private readonly ConcurrentDictionary<int, ConcurrentBag<float[]>> _free = new();
    private long _freeBytes;

    /// <summary>Bytes now held free (for tests).</summary>
    internal long FreeBytes => Interlocked.Read(ref _freeBytes);

    /// <summary>Every array a pool ever made: their contents change on reuse, so caches keyed by array identity must skip them.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<float[], object> Recyclable = new();

    public static bool IsRecyclable(float[] a) => Recyclable.TryGetValue(a, out _);

    public float[] Rent(int length)
    {
        if (_free.TryGetValue(length, out var bag) && bag.TryTake(out var a))
        {
            Interlocked.Add(ref _freeBytes, -(long)length * sizeof(float));
            return a;
        }
        a = GC.AllocateUninitializedArray<float>(length);
        Recyclable.Add(a, Recyclable);
        return a;
    }

    public void Return(float[] a)
    {
        var bag = _free.GetOrAdd(a.Length, _ => new ConcurrentBag<float[]>());
        long bytes = (long)a.Length * sizeof(float);
        if (bag.Count >= KeepPerLength) return;
        if (Interlocked.Add(ref _freeBytes, bytes) > MaxFreeBytes) { Interlocked.Add(ref _freeBytes, -bytes); return; }
        bag.Add(a);
    }
}

/// <summary>
/// The buffers of one forward pass. Kernels rent their float outputs here (<see cref="OpContext.RentFloats"/>);
/// an array goes back to the pool only when the engine drops the last tensor holding it, and only if it was rented
/// in this pass: never a caller's input, an initializer, a returned output or anything another live tensor shares
/// (Reshape, Flatten and Identity hand their input's array on).
/// </summary>
public sealed class PassBuffers
{
    private readonly BufferPool _pool;
    private readonly HashSet<float[]> _rented = new(ReferenceEqualityComparer.Instance);

    internal PassBuffers(BufferPool pool) => _pool = pool;

    /// <summary>A float array whose contents are undefined: the kernel must write every element.</summary>
    public float[] Rent(int length)
    {
        if (length < MinPooledLength) return new float[length];
        var a = _pool.Rent(length);
        lock (_rented) _rented.Add(a);
        return a;
    }

    /// <summary>Below this, allocation is cheaper than the bookkeeping (and stays out of the large-object heap).</summary>
    private const int MinPooledLength = 4096;

    /// <summary>Gives back every array rented in this pass that no tensor in <paramref name="keep"/> holds.</summary>
    internal void ReleaseAll(IEnumerable<Tensors.Tensor> keep)
    {
        var kept = new HashSet<float[]>(ReferenceEqualityComparer.Instance);
        foreach (var t in keep) if (t.Floats is not null) kept.Add(t.Floats);
        float[][] all;
        lock (_rented) { all = _rented.Where(a => !kept.Contains(a)).ToArray(); _rented.Clear(); }
        foreach (var a in all) _pool.Return(a);
    }

    /// <summary>Gives <paramref name="a"/> back if it was rented in this pass and nothing in <paramref name="live"/> still holds it.</summary>
    internal void Release(float[]? a, IEnumerable<Tensors.Tensor> live)
    {
        if (a is null) return;
        lock (_rented) if (!_rented.Contains(a)) return;
        foreach (var t in live) if (ReferenceEquals(t.Floats, a)) return;
        lock (_rented) _rented.Remove(a);
        _pool.Return(a);
    }
}
