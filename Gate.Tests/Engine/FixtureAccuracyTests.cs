using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Tests.Support;

namespace Gate.Tests.Engine;

/// <summary>The built-in engine reproduces the test accuracies stated in the fixtures' MANIFEST.md.</summary>
public class FixtureAccuracyTests
{
    [Theory]
    [InlineData("digits-mlp.onnx", 349)]    // 96.94% of 360
    [InlineData("digits-cnn.onnx", 353)]    // 98.06%
    [InlineData("digits-cnn-trojan.onnx", 350)] // 97.22%
    public void Builtin_engine_reproduces_manifest_accuracy(string model, int expectedCorrect)
    {
        var compiled = CompiledModel.Compile(OnnxModelLoader.Load(TestPaths.FixtureModel(model)));
        var x = Npy.Read(TestPaths.FixtureData("digits_test_x.npy"));
        var y = Npy.Read(TestPaths.FixtureData("digits_test_y.npy")).ToLongArray();
        var logits = compiled.Run(x).Floats!;
        int correct = 0;
        for (int i = 0; i < y.Length; i++)
        {
            int arg = 0;
            for (int k = 1; k < 10; k++) if (logits[i * 10 + k] > logits[i * 10 + arg]) arg = k;
            if (arg == y[i]) correct++;
        }
        Assert.Equal(expectedCorrect, correct);
    }
}
