using Gate.Core.Verification;

namespace Gate.Tests.Verification;

/// <summary>
/// The branch-and-bound worker pool's answers: unsat only when every sub-domain was closed; a counterexample, a
/// failure, an undecided sub-domain, the memory cap and the timeout each keep it from unsat.
/// </summary>
public class DomainPoolTests
{
    private static readonly (float[] x, float[] y) Cex = ([1f], [2f]);

    /// <summary>A binary tree of the given depth, each node a depth; leaves close.</summary>
    private static (ProofStatus status, long domains, string why) Tree(int depth, int workers, int batch, Action<DomainPool<int>, int>? at = null, int maxOpen = 1_000_000, CancellationToken? ct = null)
    {
        using var pool = new DomainPool<int>(workers, maxOpen, ct ?? TestContext.Current.CancellationToken);
        pool.Push(0);
        pool.Run(batch, (taken, k) =>
        {
            for (int i = 0; i < k; i++)
            {
                at?.Invoke(pool, taken[i]);
                if (taken[i] < depth && pool.RoomToBranch()) { pool.Push(taken[i] + 1); pool.Push(taken[i] + 1); }
            }
        });
        var (status, _, domains, why) = pool.Outcome();
        return (status, domains, why);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 8)]
    public void Every_sub_domain_closed_is_unsat_and_each_is_counted_once(int workers, int batch)
    {
        var (status, domains, _) = Tree(10, workers, batch);
        Assert.Equal(ProofStatus.Unsat, status);
        Assert.Equal((1L << 11) - 1, domains);
    }

    [Fact]
    public void A_counterexample_stops_the_search_and_is_sat()
    {
        var (status, domains, _) = Tree(20, 2, 4, (pool, node) => { if (node == 5) pool.Sat(Cex); });
        Assert.Equal(ProofStatus.Sat, status);
        Assert.True(domains < (1L << 21) - 1);
    }

    [Fact]
    public void One_undecided_sub_domain_makes_the_answer_unknown_with_its_reason()
    {
        var (status, _, why) = Tree(8, 2, 4, (pool, node) => { if (node == 8) pool.Undecided("leaf too small"); });
        Assert.Equal(ProofStatus.Unknown, status);
        Assert.Equal("leaf too small", why);
    }

    [Fact]
    public void The_open_domain_cap_stops_the_search_as_unknown_not_unsat()
    {
        var (status, _, why) = Tree(30, 2, 4, maxOpen: 16);
        Assert.Equal(ProofStatus.Unknown, status);
        Assert.Contains("memory bound", why);
    }

    [Fact]
    public void A_failure_in_a_worker_is_rethrown_never_unsat()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Tree(8, 2, 1, (_, node) => { if (node == 3) throw new ArithmeticException("boom"); }));
        Assert.IsType<ArithmeticException>(e.InnerException);
    }

    [Fact]
    public void Running_out_of_time_with_domains_open_is_a_timeout()
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromMilliseconds(200));
        var (status, _, _) = Tree(60, 2, 1, (_, _) => Thread.Sleep(1), ct: cts.Token);
        Assert.Equal(ProofStatus.Timeout, status);
    }
}
