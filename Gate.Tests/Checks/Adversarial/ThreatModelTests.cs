using Gate.Core.Checks.Adversarial;

namespace Gate.Tests.Checks.Adversarial;

/// <summary>The geometry every method relies on: projection lands inside the ball and the range, in float32.</summary>
public class ThreatModelTests
{
    [Theory]
    [InlineData(PerturbationNorm.Linf, 0.05)]
    [InlineData(PerturbationNorm.Linf, 0.3)]
    [InlineData(PerturbationNorm.L2, 0.5)]
    [InlineData(PerturbationNorm.L2, 3.0)]
    public void Projection_always_lands_in_the_ball_and_the_range(PerturbationNorm norm, double eps)
    {
        var threat = new ThreatModel(norm, eps, 0.0, 1.0);
        var rng = new Random(17); // test-side randomness only
        for (int trial = 0; trial < 300; trial++)
        {
            int d = 1 + rng.Next(80);
            var clean = Enumerable.Range(0, d).Select(_ => (float)rng.NextDouble()).ToArray();
            var x = clean.Select(c => (float)(c + (rng.NextDouble() * 2 - 1) * eps * 3 * (trial % 3 == 0 ? 1e-6 * rng.Next(3) + 1 : 1))).ToArray();
            threat.Project(clean, x);
            Assert.True(threat.Admits(clean, x));
            // Independent check of the same facts, in double from the float32 values.
            Assert.All(x, v => Assert.InRange(v, 0f, 1f));
            double dist = norm == PerturbationNorm.Linf
                ? x.Zip(clean).Max(p => Math.Abs((double)p.First - p.Second))
                : Math.Sqrt(x.Zip(clean).Sum(p => ((double)p.First - p.Second) * ((double)p.First - p.Second)));
            Assert.True(dist <= eps, $"distance {dist} > {eps}");
        }
    }

    [Fact]
    public void Projection_keeps_points_already_inside_unchanged()
    {
        var threat = new ThreatModel(PerturbationNorm.Linf, 0.1, 0, 1);
        float[] clean = [0.5f, 0.2f, 0.9f], x = [0.55f, 0.15f, 0.95f];
        var before = (float[])x.Clone();
        threat.Project(clean, x);
        Assert.Equal(before, x);
    }

    [Fact]
    public void Linf_projection_rounds_onto_the_ball_edge_not_past_it()
    {
        // 0.1f + 0.3 is not representable; a naive (float)(clean + eps) may land above clean + eps.
        var threat = new ThreatModel(PerturbationNorm.Linf, 0.3, 0, 1);
        float[] clean = [0.1f, 0.7f];
        float[] x = [1f, 0f];
        threat.Project(clean, x);
        Assert.True((double)x[0] - clean[0] <= 0.3);
        Assert.True(clean[1] - (double)x[1] <= 0.3);
        Assert.True((double)x[0] - clean[0] > 0.3 - 1e-6); // still on the edge, not pulled in
    }

    [Fact]
    public void Rng_streams_are_reproducible_and_distinct()
    {
        var a = AttackRng.ForStream(42, 1, 2, 3);
        var b = AttackRng.ForStream(42, 1, 2, 3);
        var c = AttackRng.ForStream(42, 1, 2, 4);
        var sa = Enumerable.Range(0, 100).Select(_ => a.NextULong()).ToArray();
        Assert.Equal(sa, Enumerable.Range(0, 100).Select(_ => b.NextULong()).ToArray());
        Assert.NotEqual(sa, Enumerable.Range(0, 100).Select(_ => c.NextULong()).ToArray());
        var u = new AttackRng(7);
        var draws = Enumerable.Range(0, 20000).Select(_ => u.NextDouble()).ToArray();
        Assert.All(draws, v => Assert.InRange(v, 0.0, 1.0 - 1e-17));
        Assert.InRange(draws.Average(), 0.49, 0.51);
        Assert.InRange(Enumerable.Range(0, 20000).Select(_ => u.NextInt(10)).Count(v => v == 3), 1800, 2200);
    }

    [Fact]
    public void Apgd_checkpoints_follow_the_paper()
    {
        // p0 = 0, p1 = 0.22, p(j+1) = p(j) + max(p(j) − p(j−1) − 0.03, 0.06), checkpoints at ceil-free p(j)·N for N = 100.
        Assert.Equal([22, 41, 57, 70, 80, 87, 93, 99], ApgdAttack.Checkpoints(100));
        Assert.Equal([1, 2, 3], ApgdAttack.Checkpoints(3));
    }

    [Fact]
    public void Square_window_share_halves_on_schedule()
    {
        Assert.Equal(0.8, SquareAttack.WindowShare(0.8, 5, 10000));
        Assert.Equal(0.4, SquareAttack.WindowShare(0.8, 11, 10000));
        Assert.Equal(0.8 / 512, SquareAttack.WindowShare(0.8, 9000, 10000));
        Assert.Equal(0.4, SquareAttack.WindowShare(0.8, 2, 1000)); // rescaled: iteration 2 of 1000 ≈ 20 of 10 000
    }

    [Fact]
    public void Goal_losses_agree_with_their_definitions()
    {
        float[] z = [1f, 3f, 2f];
        var grad = new float[3];
        double ce = AttackGoal.Untargeted.CrossEntropy(z, 0, grad);
        double lse = Math.Log(Math.Exp(1) + Math.Exp(3) + Math.Exp(2));
        Assert.Equal(lse - 1, ce, 1e-9);
        // numeric gradient
        for (int k = 0; k < 3; k++)
        {
            var zp = (float[])z.Clone(); zp[k] += 1e-3f;
            double num = (AttackGoal.Untargeted.CrossEntropy(zp, 0, new float[3]) - ce) / 1e-3;
            Assert.Equal(num, grad[k], 2e-3);
        }
        Assert.True(AttackGoal.Untargeted.IsMet(z, 0));
        Assert.False(AttackGoal.Untargeted.IsMet(z, 1));
        var toZero = new AttackGoal(0);
        Assert.False(toZero.IsMet(z, 1));
        Assert.Equal(3 - 1, toZero.Margin(z, 1));
        Assert.Equal(3 - 2, AttackGoal.Untargeted.Margin(z, 1));
        Assert.False(AttackGoal.Untargeted.IsMet([float.NaN, 0f, 0f], 1));
    }
}
