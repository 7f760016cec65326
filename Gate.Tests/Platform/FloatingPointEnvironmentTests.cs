using Gate.Core.Platform;
using Gate.Core.Runtime;
using Gate.Core.Runtime.OnnxRuntime;
using Gate.Core.Tensors;
using Gate.Tests.Runtime;
using Gate.Tests.Support;

namespace Gate.Tests.Platform;

/// <summary>
/// The thread's subnormal mode is set for a call and restored after it; ONNX Runtime's calling thread flushes like its
/// pool threads. Every test first puts its thread in a known state: xunit's threads are shared, and a native library
/// that changed a thread's mode (ONNX Runtime's first session used to) changes it for whatever test runs there next.
/// </summary>
public class FloatingPointEnvironmentTests
{
    private static bool Flushes() => FloatingPointEnvironment.ThreadFlushesDenormals();

    private static void NeedSettableMode() =>
        Assert.True(FloatingPointEnvironment.CanFlushDenormals, "Gate's CI runs on Linux x86-64, where the subnormal mode can be set");

    [Fact]
    public void Each_mode_holds_for_the_call_only()
    {
        NeedSettableMode();
        FloatingPointEnvironment.WithDenormalsKept(() =>
        {
            Assert.False(Flushes());
            Assert.True(FloatingPointEnvironment.WithDenormalsFlushed(Flushes));
            Assert.False(Flushes());
            // Whatever a call does to the mode, Preserving undoes it (ORT's first session switches flushing on for good).
            FloatingPointEnvironment.Preserving(() => { FloatingPointEnvironment.SetFlushing(true); return Flushes(); });
            Assert.False(Flushes());
            FloatingPointEnvironment.WithDenormalsFlushed(() =>
            {
                Assert.False(FloatingPointEnvironment.WithDenormalsKept(Flushes));
                Assert.True(Flushes());
                return 0;
            });
            return 0;
        });
    }

    [Fact]
    public void Onnx_runtime_flushes_on_the_calling_thread_and_leaves_its_mode_as_it_was()
    {
        NeedSettableMode();
        OrtTestSupport.RequireOrt();
        var b = new OnnxBuilder([1, 4]);
        var y = b.Node("Mul", [b.InputName, b.Init([0.5f], 1)]);
        b.Build(y, [1, 4]);
        var model = File.ReadAllBytes(b.Save(Path.Combine(TestPaths.TempDir(), "half.onnx")));
        // Subnormal inputs by bits (no float arithmetic in the test itself): 1e-39 and -3e-39 as stored, and 2e-38,
        // which is normal but whose half is not.
        float[] x = new[] { 0x000AE398, unchecked((int)0x8020AB48), 0x3F800000, 0x00D9C61B }.Select(BitConverter.Int32BitsToSingle).ToArray();
        FloatingPointEnvironment.WithDenormalsKept(() =>
        {
            // One intra-op thread: ORT computes the whole run on this (calling) thread, which its session option never reaches.
            using var session = OrtSession.Create(model, "half.onnx", new OrtSessionSettings(IntraOpThreads: 1));
            Assert.True(session.FlushesDenormals);
            Assert.False(Flushes()); // creating the session changed nothing here
            for (int run = 0; run < 20; run++)
            {
                var r = session.Run(new Dictionary<string, Tensor> { [b.InputName] = Tensor.FromFloats([1, 4], x) })[y].ToFloatArray();
                Assert.Equal([0, unchecked((int)0x80000000), 0x3F000000, 0], r.Select(BitConverter.SingleToInt32Bits));
                Assert.False(Flushes());
            }
            return 0;
        });
    }

    [Fact]
    public void An_onnx_runtime_session_asked_not_to_flush_keeps_ieee_subnormals_even_on_a_flushing_thread()
    {
        NeedSettableMode();
        OrtTestSupport.RequireOrt();
        var b = new OnnxBuilder([1, 2]);
        var y = b.Node("Mul", [b.InputName, b.Init([0.5f], 1)]);
        b.Build(y, [1, 2]);
        var model = File.ReadAllBytes(b.Save(Path.Combine(TestPaths.TempDir(), "half.onnx")));
        float[] x = new[] { 0x000AE398, 0x00D9C61B }.Select(BitConverter.Int32BitsToSingle).ToArray(); // 1e-39, 2e-38
        FloatingPointEnvironment.WithDenormalsFlushed(() =>
        {
            using var session = OrtSession.Create(model, "half.onnx", new OrtSessionSettings(IntraOpThreads: 1, FlushDenormals: false));
            Assert.False(session.FlushesDenormals);
            var r = session.Run(new Dictionary<string, Tensor> { [b.InputName] = Tensor.FromFloats([1, 2], x) })[y].ToFloatArray();
            // Halved exactly: 0x000AE398 >> 1 and (1.7 * 2^-126) / 2 as a subnormal; the thread flushes again afterwards.
            Assert.Equal([0x000571CC, 0x006CE30E], r.Select(BitConverter.SingleToInt32Bits));
            Assert.True(Flushes());
            return 0;
        });
    }
}
