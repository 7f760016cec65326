using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Tensors;
using Gate.Core.Verification;
using Gate.Tests.Support;

namespace Gate.Tests.Verification;

/// <summary>
/// The falsifier (<see cref="Prover"/>'s restart attack and its searches during branch and bound) finds violations
/// that random restarts miss, and what it returns is a real counterexample inside the box.
/// </summary>
public class FalsifierTests
{
    /// <summary>
    /// 5 inputs in [0, 1]; y0 = 1 − 10·relu(x0+x1+x2+x3 − 3.8) + 20·relu(x4 − 0.52) + 20·relu(0.48 − x4), y1 = 0.
    /// y0 ≤ y1 only where x0+x1+x2+x3 ≥ 3.9 and x4 is within 0.05 of 0.5: a corner slab of volume ~4e-6 crossed with
    /// a narrow band. Elsewhere the first ReLU is off, so no gradient leads into the slab from a random start.
    /// </summary>
    private static OnnxModel NarrowViolation()
    {
        var b = new OnnxBuilder([1, 5], opset: 13);
        float[] w1 =
        [
            1, 0, 0,
            1, 0, 0,
            1, 0, 0,
            1, 0, 0,
            0, 1, -1,
        ]; // 5 × 3 (MatMul: in × out)
        var h = b.Node("Relu", [b.Node("Add", [b.Node("MatMul", [b.InputName, b.Init(w1, 5, 3)]), b.Init([-3.8f, -0.52f, 0.48f], 3)])]);
        float[] w2 = [-10, 0, 20, 0, 20, 0]; // 3 × 2
        var y = b.Node("Add", [b.Node("MatMul", [h, b.Init(w2, 3, 2)]), b.Init([1f, 0f], 2)]);
        return b.Build(y, [1, 2]);
    }

    [Fact]
    public void The_restart_attack_finds_a_narrow_violating_region_that_random_restarts_miss()
    {
        var model = NarrowViolation();
        var chain = ReluChain.TryBuild(model);
        Assert.NotNull(chain);
        double[] lo = [0, 0, 0, 0, 0], hi = [1, 1, 1, 1, 1];
        var k = new OutputConstraint([1, -1], 0, 1, 1); // Y_0 − Y_1 ≤ 0
        var c = new VnnCase(lo, hi, [k]);
        using var confirm = new BuiltinRuntime().Load(model, new RuntimeOptions());
        // The same budget as before branch and bound: 200 restarts (ChainAttackRestarts). Random restarts with
        // descent reach the slab with probability ~1% here; the falsifier's corner starts and momentum find it.
        var prover = new Prover(model, confirm, new ProverOptions { Seed = 1 });
        var cex = prover.RestartAttack(c, chain!, [1, -1], [0], 200, seedSalt: 7, TestContext.Current.CancellationToken);
        Assert.NotNull(cex);
        var (x, yOut) = cex.Value;
        for (int i = 0; i < 5; i++) Assert.InRange(x[i], (float)lo[i], (float)hi[i]);
        var y = CompiledModel.Compile(model).Run(Tensor.FromFloats([1, 5], x)).Floats!;
        Assert.Equal(y, yOut);
        Assert.True(y[0] - y[1] <= 0, $"counterexample gives y0 − y1 = {y[0] - y[1]}");
        Assert.True(x[0] + x[1] + x[2] + x[3] >= 3.89f && Math.Abs(x[4] - 0.5f) <= 0.051f, $"x = [{string.Join(", ", x)}]");
    }
}
