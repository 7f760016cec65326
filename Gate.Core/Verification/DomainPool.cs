using System.Collections.Concurrent;

namespace Gate.Core.Verification;

/// <summary>
/// The worker pool of every branch-and-bound search in the prover: a shared depth-first stack of open sub-domains
/// (so memory stays proportional to depth × batch), several threads popping batches from it, and the bookkeeping
/// the answer needs — a confirmed counterexample (stops the search), sub-domains left undecided, the first
/// failure (stops the search), the number of sub-domains bounded, and a cap on open sub-domains (memory bound).
/// The search itself is the <c>process</c> callback of <see cref="Run"/>; it pushes children with
/// <see cref="Push"/> and reports with <see cref="Sat"/> / <see cref="Undecided"/>.
/// </summary>
internal sealed class DomainPool<T> : IDisposable
{
    private readonly ConcurrentStack<T> _stack = new();
    private readonly CancellationTokenSource _stop;
    private readonly CancellationToken _outer;
    private readonly int _workers, _maxOpen;
    private int _busy, _unknown;
    private long _domains;
    private (float[] x, float[] y)? _found;
    private Exception? _failure;
    private string _why = "";

    public DomainPool(int workers, int maxOpen, CancellationToken ct)
    {
        _workers = Math.Max(1, workers);
        _maxOpen = maxOpen;
        _outer = ct;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
    }

    /// <summary>True once the search must end: timeout, a counterexample, a failure or the memory bound.</summary>
    public bool Stopping => _stop.IsCancellationRequested;
    /// <summary>Cancelled once the search stops (a counterexample, a failure, the caller): for work done inside a step.</summary>
    public CancellationToken Token => _stop.Token;
    public long Domains => Interlocked.Read(ref _domains);
    public Exception? Failure => _failure;

    public void Push(T domain) => _stack.Push(domain);

    /// <summary>Counts sub-domains bounded outside the pops (e.g. children bounded to choose a split).</summary>
    public void AlsoBounded(int count) => Interlocked.Add(ref _domains, count);

    /// <summary>A confirmed counterexample: recorded, and every worker stops.</summary>
    public void Sat((float[] x, float[] y) cex) { _found = cex; _stop.Cancel(); }

    /// <summary>A sub-domain the search cannot close: the answer can then be unknown at best, never unsat.</summary>
    public void Undecided(string why) { Interlocked.Increment(ref _unknown); _why = why; }

    /// <summary>False (and the search stopped, undecided) when pushing children would pass the open-domain cap.</summary>
    public bool RoomToBranch()
    {
        if (_stack.Count < _maxOpen) return true;
        Undecided($"more than {_maxOpen} open sub-domains (memory bound)");
        _stop.Cancel();
        return false;
    }

    /// <summary>
    /// Runs the workers until the stack is empty and every worker idle, or the search stops. Each worker pops up
    /// to <paramref name="batch"/> sub-domains at a time — fewer while the stack is shallow, so that the others
    /// get some — and hands them to <paramref name="process"/> (the array, and how many of it are taken).
    /// </summary>
    public void Run(int batch, Action<T[], int> process)
    {
        batch = Math.Max(1, batch);
        void Work()
        {
            var taken = new T[batch];
            while (!_stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref _busy);
                int want = Math.Clamp(_stack.Count / _workers, 1, batch);
                int k = _stack.TryPopRange(taken, 0, want);
                if (k == 0)
                {
                    Interlocked.Decrement(ref _busy);
                    if (Volatile.Read(ref _busy) == 0 && _stack.IsEmpty) return;
                    Thread.Sleep(1);
                    continue;
                }
                try
                {
                    Interlocked.Add(ref _domains, k);
                    process(taken, k);
                }
                catch (Exception e) when (e is not OperationCanceledException) { _failure ??= e; _stop.Cancel(); return; }
                finally { Interlocked.Decrement(ref _busy); }
            }
        }
        var threads = Enumerable.Range(0, _workers).Select(_ => new Thread(Work) { IsBackground = true }).ToList();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
    }

    /// <summary>
    /// The answer once <see cref="Run"/> returned: sat with a confirmed counterexample; a failure rethrown
    /// (callers that can name an unknown instead check <see cref="Failure"/> first); unknown when some sub-domain
    /// was left undecided; timeout when the time ran out or domains are still open; unsat only when every
    /// sub-domain was closed.
    /// </summary>
    public (ProofStatus status, (float[] x, float[] y)? cex, long domains, string why) Outcome()
    {
        if (_found is not null) return (ProofStatus.Sat, _found, Domains, "");
        if (_failure is not null) throw new InvalidOperationException($"branch and bound failed: {_failure.Message}", _failure);
        if (_unknown > 0) return (ProofStatus.Unknown, null, Domains, _why);
        if (_outer.IsCancellationRequested || !_stack.IsEmpty) return (ProofStatus.Timeout, null, Domains, "");
        return (ProofStatus.Unsat, null, Domains, "");
    }

    public void Dispose() => _stop.Dispose();
}
