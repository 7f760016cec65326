using Gate.Core.Platform;
using System.Collections.Concurrent;
using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>
/// The built-in engine flushes subnormals (DAZ + FTZ) on every thread its kernels use, for the duration of a pass
/// only, and keeps IEEE subnormals where asked (gate run). Values are given and checked by bit pattern so that the
/// test's own arithmetic cannot be flushed. Every test puts its thread in a known mode first and restores it
/// (xunit's threads are shared with other tests).
/// </summary>
public class SubnormalFlushTests
{
    /// <summary>2^-140, a subnormal: 512 · 2^-149.</summary>
    private static readonly float Subnormal = BitConverter.Int32BitsToSingle(512);
    /// <summary>2^-70, normal; its square 2^-140 is subnormal.</summary>
    private static readonly float TwoToMinus70 = BitConverter.Int32BitsToSingle((127 - 70) << 23);

    private static void NeedSettableMode() =>
        Assert.True(FloatingPointEnvironment.CanFlushDenormals, "Gate's CI runs on Linux x86-64, where the subnormal mode can be set");

    /// <summary>y = x · W for x [rows, k] and W [k, cols], one value everywhere.</summary>
    private static OnnxModel MatMulModel(int k, int cols, float weight)
    {
        var b = new OnnxBuilder([1, k]);
        var y = b.Node("MatMul", [b.InputName, b.Init(Enumerable.Repeat(weight, k * cols).ToArray(), k, cols)]);
        return b.Build(y, [1, cols]);
    }

    private static int[] Bits(Tensor t) => t.Floats!.Select(BitConverter.SingleToInt32Bits).ToArray();

    // rows × k × cols: 1 × 8 × 16 stays on the calling thread; 96 × 64 × 64 (393 216 multiply-adds, four row blocks)
    // runs Kernels.MatMul's fork-join, whose helper takes chunks.
    [Theory]
    [InlineData(1, 8, 16)]
    [InlineData(96, 64, 64)]
    public void Subnormal_inputs_and_products_yield_zero_on_the_calling_thread_and_the_helpers(int rows, int k, int cols)
    {
        NeedSettableMode();
        FloatingPointEnvironment.WithDenormalsKept(() =>
        {
            // DAZ: a subnormal input times 1 reads as 0. FTZ: 2^-70 · 2^-70 = 2^-140 is flushed.
            foreach (var (input, weight) in new[] { (Subnormal, 1f), (TwoToMinus70, TwoToMinus70) })
            {
                var model = MatMulModel(k, cols, weight);
                var x = Tensor.FromFloats([rows, k], Enumerable.Repeat(input, rows * k).ToArray());
                var flushing = CompiledModel.Compile(model);
                Assert.True(flushing.FlushDenormals);
                Assert.All(Bits(flushing.Run(x)), b => Assert.Equal(0, b));
                Assert.False(FloatingPointEnvironment.ThreadFlushesDenormals()); // the caller's mode is back
                // Kept (gate run): the exact IEEE sum k · 2^-140 = k · 512 · 2^-149, on every thread.
                var ieee = CompiledModel.Compile(model, flushDenormals: false);
                Assert.False(ieee.FlushDenormals);
                Assert.All(Bits(FloatingPointEnvironment.WithDenormalsFlushed(() => ieee.Run(x))), b => Assert.Equal(k * 512, b));
            }
            return 0;
        });
    }

    [Fact]
    public void Gradients_flush_too_and_the_mode_is_restored_after_backward()
    {
        NeedSettableMode();
        FloatingPointEnvironment.WithDenormalsKept(() =>
        {
            var engine = CompiledModel.Compile(MatMulModel(64, 64, TwoToMinus70));
            var x = Tensor.FromFloats([96, 64], Enumerable.Repeat(1f, 96 * 64).ToArray());
            using var pass = engine.Forward(new Dictionary<string, Tensor> { ["x"] = x }, recordForBackward: true);
            var seed = Tensor.FromFloats([96, 64], Enumerable.Repeat(TwoToMinus70, 96 * 64).ToArray());
            // dx = seed · Wᵀ: 64 products 2^-140 each, all flushed.
            var dx = engine.Backward(pass, new Dictionary<string, Tensor> { [engine.OutputNames[0]] = seed }, ["x"])["x"];
            Assert.All(Bits(dx), b => Assert.Equal(0, b));
            Assert.False(FloatingPointEnvironment.ThreadFlushesDenormals());
            return 0;
        });
    }

    [Fact]
    public void Pooling_which_ran_on_the_dotnet_pool_flushes_on_its_workers()
    {
        // 256 planes of AveragePool: one fork-join chunk per plane. It ran on Parallel.For's pool threads, whose mode
        // the engine does not control.
        NeedSettableMode();
        var b = new OnnxBuilder([1, 64, 4, 4]);
        var y = b.Node("AveragePool", [b.InputName], ("kernel_shape", new long[] { 2, 2 }), ("strides", new long[] { 2, 2 }));
        var engine = CompiledModel.Compile(b.Build(y, [1, 64, 2, 2]));
        var x = Tensor.FromFloats([4, 64, 4, 4], Enumerable.Repeat(Subnormal, 4 * 64 * 16).ToArray());
        FloatingPointEnvironment.WithDenormalsKept(() =>
        {
            for (int round = 0; round < 20; round++) Assert.All(Bits(engine.Run(x)), v => Assert.Equal(0, v));
            return 0;
        });
    }

    [Fact]
    public void Records_flushing_where_it_flushes()
    {
        NeedSettableMode();
        var model = MatMulModel(8, 8, 1f);
        Assert.True(WhiteBoxEngines.Choose(model, "builtin").Choice.FlushDenormals);
        Assert.True(WhiteBoxEngines.Choose(model, "auto").Choice.FlushDenormals);
        Assert.False(WhiteBoxEngines.Choose(model, "builtin", flushDenormals: false).Choice.FlushDenormals);
        using var session = new BuiltinRuntime().Load(model, new RuntimeOptions());
        Assert.True(session.Info.FlushDenormals);
        using var ieee = new BuiltinRuntime().Load(model, new RuntimeOptions(FlushDenormals: false));
        Assert.False(ieee.Info.FlushDenormals);
    }
}
