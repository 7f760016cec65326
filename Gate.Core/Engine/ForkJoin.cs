using System.Runtime.ExceptionServices;

namespace Gate.Core.Engine;

/// <summary>
/// A light fork-join for kernels whose parallel parts take microseconds (a batch-256 GEMM of a small MLP layer):
/// Parallel.For's bookkeeping costs a noticeable share of such work. The calling thread and up to one helper per
/// other core claim chunk indices from a shared counter, so the call completes even if no helper ever starts
/// (the caller then runs every chunk itself): a busy thread pool cannot deadlock it.
/// </summary>
internal static class ForkJoin
{
    /// <summary>Runs <paramref name="body"/>(0 … count−1), in parallel where cores allow; rethrows the first exception.</summary>
    public static void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (count == 1) { body(0); return; }
        var job = new Job(count, body);
        int helpers = Math.Min(count, Environment.ProcessorCount) - 1;
        for (int h = 0; h < helpers; h++) ThreadPool.UnsafeQueueUserWorkItem(job, preferLocal: false);
        job.Execute();
        job.WaitForAll();
        if (job.Error is { } e) ExceptionDispatchInfo.Throw(e);
    }

    private sealed class Job(int count, Action<int> body) : IThreadPoolWorkItem
    {
        private int _next = -1, _done;
        public Exception? Error;

        public void Execute()
        {
            int i;
            while ((i = Interlocked.Increment(ref _next)) < count)
            {
                try { body(i); }
                catch (Exception e) { Interlocked.CompareExchange(ref Error, e, null); }
                finally { Interlocked.Increment(ref _done); }
            }
        }

        /// <summary>Waits for chunks claimed by helpers; spins and yields but never sleeps (the chunks are short).</summary>
        public void WaitForAll()
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _done) < count) spin.SpinOnce(sleep1Threshold: -1);
        }
    }
}
