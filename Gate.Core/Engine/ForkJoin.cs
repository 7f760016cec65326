using Gate.Core.Platform;
using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace Gate.Core.Engine;

/// <summary>
/// Fork-join for kernels whose parallel parts take microseconds (a batch-256 GEMM of a small MLP layer). Thread-pool
/// workers fall asleep between such parts and take longer to wake than the part takes to run, so a forward pass
/// would run serially about half the time. Instead one helper thread per further core stays briefly awake after
/// each piece of work (as ONNX Runtime's intra-op threads do) and picks up the next one at once.
/// The calling thread and the helpers claim chunk indices from a shared counter: a call completes even if no helper
/// is free (nested or concurrent calls) or none ever starts, because the caller then runs every chunk itself.
/// A helper computes in the caller's subnormal mode (flush-to-zero or IEEE, <see cref="Gate.Core.Platform.FloatingPointEnvironment"/>)
/// for the duration of the job and restores its own afterwards, so a chunk's result does not depend on which thread
/// ran it and the mode never outlives the call.
/// </summary>
internal static class ForkJoin
{
    private static readonly Helper[] Helpers = Enumerable.Range(0, Math.Max(0, Environment.ProcessorCount - 1)).Select(i => new Helper(i)).ToArray();

    /// <summary>Runs <paramref name="body"/>(0 … count−1), in parallel where cores allow; rethrows the first exception.</summary>
    public static void For(int count, Action<int> body)
    {
        if (count <= 0) return;
        if (count == 1) { body(0); return; }
        var job = new Job(count, body, Gate.Core.Platform.FloatingPointEnvironment.IsFlushing());
        for (int h = 0, offered = 0; h < Helpers.Length && offered < count - 1; h++)
            if (Helpers[h].Offer(job)) offered++;
        job.Execute();
        job.WaitForAll();
        if (job.Error is { } e) ExceptionDispatchInfo.Throw(e);
    }

    private sealed class Job(int count, Action<int> body, bool flush)
    {
        private int _next = -1, _done;
        public Exception? Error;
        /// <summary>The caller's subnormal mode, which helpers adopt while they run this job's chunks.</summary>
        public bool Flush => flush;

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

    /// <summary>A background thread with a one-job slot: it spins on the slot for a while after each job, then sleeps.</summary>
    private sealed class Helper
    {
        /// <summary>How long a helper keeps looking for the next job before it sleeps (CPU it burns when idle).</summary>
        private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 µs

        private Job? _slot;
        private readonly ManualResetEventSlim _wake = new(false);

        public Helper(int index)
        {
            new Thread(Run) { IsBackground = true, Name = $"gate-engine-{index + 1}" }.Start();
        }

        /// <summary>False when the helper already has a job waiting (another caller's, or a nested call's).</summary>
        public bool Offer(Job job)
        {
            if (Interlocked.CompareExchange(ref _slot, job, null) is not null) return false;
            _wake.Set();
            return true;
        }

        private static void ExecuteInCallersMode(Job job)
        {
            var saved = default(Gate.Core.Platform.FloatingPointEnvironment.Saved);
            Gate.Core.Platform.FloatingPointEnvironment.Enter(ref saved, job.Flush);
            try { job.Execute(); }
            finally { Gate.Core.Platform.FloatingPointEnvironment.Leave(ref saved); }
        }

        private void Run()
        {
            long lastWork = Stopwatch.GetTimestamp();
            while (true)
            {
                if (Interlocked.Exchange(ref _slot, null) is { } job)
                {
                    ExecuteInCallersMode(job);
                    lastWork = Stopwatch.GetTimestamp();
                    continue;
                }
                if (Stopwatch.GetTimestamp() - lastWork < SpinTicks)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                // The slot is re-checked after every wake-up, so a job offered between the check above and this
                // wait (its Set leaves the event signalled) is not lost.
                _wake.Wait();
                _wake.Reset();
                lastWork = Stopwatch.GetTimestamp();
            }
        }
    }
}
