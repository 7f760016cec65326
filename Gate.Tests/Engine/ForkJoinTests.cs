using Gate.Core.Platform;
using Gate.Core.Engine;

namespace Gate.Tests.Engine;

/// <summary>The engine's fork-join: every chunk runs exactly once, errors surface, and nested or concurrent calls cannot deadlock.</summary>
public class ForkJoinTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(37)]
    public void Every_chunk_runs_exactly_once(int count)
    {
        var runs = new int[count];
        for (int round = 0; round < 200; round++)
        {
            ForkJoin.For(count, i => Interlocked.Increment(ref runs[i]));
        }
        Assert.All(runs, r => Assert.Equal(200, r));
    }

    [Fact]
    public void An_exception_in_a_chunk_reaches_the_caller_after_all_chunks_ran()
    {
        int ran = 0;
        var e = Assert.Throws<InvalidOperationException>(() => ForkJoin.For(8, i =>
        {
            Interlocked.Increment(ref ran);
            if (i == 5) throw new InvalidOperationException("chunk 5");
        }));
        Assert.Equal("chunk 5", e.Message);
        Assert.Equal(8, ran);
    }

    [Fact]
    public async Task Nested_and_concurrent_calls_complete()
    {
        long total = 0;
        var callers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            for (int round = 0; round < 50; round++)
                ForkJoin.For(4, i => ForkJoin.For(3, j => Interlocked.Increment(ref total)));
        })).ToArray();
        await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(4 * 50 * 4 * 3, total);
    }
    [Fact]
    public void Helpers_compute_in_the_callers_subnormal_mode_and_keep_it_no_longer()
    {
        Assert.True(Gate.Core.Platform.FloatingPointEnvironment.CanFlushDenormals, "Gate's CI runs on Linux x86-64, where the subnormal mode can be set");
        foreach (bool flush in new[] { true, false, true, false })
        {
            // Chunks that sleep a little, so that the helper (one per further core) surely takes some.
            var seen = new System.Collections.Concurrent.ConcurrentBag<(int Thread, bool Flushes)>();
            for (int attempt = 0; attempt < 5 && seen.Select(s => s.Thread).Distinct().Count() < Math.Min(2, Environment.ProcessorCount); attempt++)
            {
                seen.Clear();
                Func<int> call = () =>
                {
                    ForkJoin.For(32, i => { Thread.Sleep(1); seen.Add((Environment.CurrentManagedThreadId, Gate.Core.Platform.FloatingPointEnvironment.ThreadFlushesDenormals())); });
                    return 0;
                };
                if (flush) Gate.Core.Platform.FloatingPointEnvironment.WithDenormalsFlushed(call);
                else Gate.Core.Platform.FloatingPointEnvironment.WithDenormalsKept(call);
                Assert.All(seen, s => Assert.Equal(flush, s.Flushes));
            }
            Assert.True(seen.Select(s => s.Thread).Distinct().Count() >= Math.Min(2, Environment.ProcessorCount), "no helper took a chunk in five attempts");
        }
    }
}
