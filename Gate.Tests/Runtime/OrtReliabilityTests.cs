using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Runtime;

/// <summary>Sessions under concurrent use, and native memory across many runs.</summary>
public class OrtReliabilityTests
{
    [Fact]
    public void Concurrent_runs_on_one_session_give_identical_results()
    {
        OrtTestSupport.RequireOrt();
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-cnn.onnx"));
        var x = Npy.Read(TestPaths.FixtureData("digits_test_x.npy"));
        const int batches = 24, batchSize = 15;
        using var s = new OnnxRuntimeInference().Load(model, new RuntimeOptions());
        // Reference: each batch run alone, one after another.
        var reference = Enumerable.Range(0, batches).Select(b => s.RunSingle(x.SliceBatch(b * batchSize, batchSize)).Floats!).ToArray();

        const int threads = 8, rounds = 10;
        var mismatches = new System.Collections.Concurrent.ConcurrentBag<string>();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            for (int r = 0; r < rounds; r++)
            {
                int b = (t * 7 + r * 5) % batches; // threads hit different batches at the same time
                var y = s.RunSingle(x.SliceBatch(b * batchSize, batchSize)).Floats!;
                if (!y.AsSpan().SequenceEqual(reference[b])) mismatches.Add($"thread {t} round {r} batch {b}");
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        Assert.Empty(mismatches);
    }

    [Fact]
    public void Disposed_session_refuses_to_run()
    {
        OrtTestSupport.RequireOrt();
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));
        var s = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1));
        s.Dispose();
        Assert.Throws<ObjectDisposedException>(() => s.RunSingle(Tensor.Zeros(DType.Float32, [1, 1, 8, 8])));
    }
}

/// <summary>RSS is process-wide, so this test runs alone (after the parallel tests), not beside others that allocate.</summary>
[CollectionDefinition(nameof(OrtMemoryTests), DisableParallelization = true)]
public sealed class OrtMemoryCollection;

[Collection(nameof(OrtMemoryTests))]
public class OrtMemoryTests
{
    private static long RssKiB()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }

    /// <summary>
    /// 10,000 runs must keep RSS flat. Bounds, after a 10,000-run warm-up: RSS grows by less than 12 MiB, and RSS minus
    /// the GC's committed bytes (native memory: ORT's and the pinned-buffer bookkeeping) by less than 4 MiB. Each run
    /// moves a 64-row batch (16 KiB in, 2.5 KiB out), so leaking the output OrtValue alone would add ≥ 25 MiB.
    /// Measured without a leak over 60,000 runs: RSS moves by ±4 MiB between rounds (the GC committing and
    /// releasing a region), RSS minus GC-committed by &lt; 0.3 MiB. At the end of the full suite, though, the GC once
    /// gave back 46 MiB of committed memory that was only partly resident, which read as +9 MiB of "native" growth
    /// while RSS fell by 37 MiB. A leak grows every round, so two rounds are measured and the smaller growth must
    /// stay under the bounds: a one-off of the GC's passes, a leak of 25 MiB per round fails both.
    /// </summary>
    [Fact]
    public void Ten_thousand_runs_keep_RSS_flat()
    {
        OrtTestSupport.RequireOrt();
        var model = OnnxModelLoader.Load(TestPaths.FixtureModel("digits-mlp.onnx"));
        var x = Npy.Read(TestPaths.FixtureData("digits_test_x.npy")).SliceBatch(0, 64);
        using var s = new OnnxRuntimeInference().Load(model, new RuntimeOptions(IntraOpThreads: 1));
        var inputs = new Dictionary<string, Tensor> { ["input"] = x };
        for (int i = 0; i < 10_000; i++) s.Run(inputs); // warm-up: arenas, JIT, GC heap sizing
        var rounds = new List<(long Rss, long Native)> { Measure() };
        for (int round = 0; round < 2; round++)
        {
            for (int i = 0; i < 10_000; i++) s.Run(inputs);
            rounds.Add(Measure());
        }
        var growth = Enumerable.Range(1, 2).Select(k => (Rss: rounds[k].Rss - rounds[k - 1].Rss, Native: rounds[k].Native - rounds[k - 1].Native)).ToList();
        TestContext.Current.TestOutputHelper?.WriteLine("per 10,000 runs: " + string.Join("; ", growth.Select(g => $"VmRSS {g.Rss:+#;-#;0} KiB, VmRSS - GC committed {g.Native:+#;-#;0} KiB")));
        long rss = growth.Min(g => g.Rss), native = growth.Min(g => g.Native);
        Assert.True(rss < 12 * 1024, $"VmRSS grew by at least {rss} KiB in each of two rounds of 10,000 runs (bound 12288 KiB)");
        Assert.True(native < 4 * 1024, $"native memory (VmRSS - GC committed) grew by at least {native} KiB in each of two rounds of 10,000 runs (bound 4096 KiB)");
    }

    private static (long Rss, long Native) Measure()
    {
        GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect();
        long rss = RssKiB();
        return (rss, rss - GC.GetGCMemoryInfo().TotalCommittedBytes / 1024);
    }
}
