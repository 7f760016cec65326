using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Core.Runtime;

/// <summary>The built-in engine as an <see cref="IInferenceRuntime"/> (white-box work, and the fallback for tests).</summary>
public sealed class BuiltinRuntime : IInferenceRuntime
{
    public string Name => "builtin";
    public static string Version => typeof(BuiltinRuntime).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public IInferenceSession Load(OnnxModel model, RuntimeOptions options) => new Session(CompiledModel.Compile(model, options.FlushDenormals));

    private sealed class Session(CompiledModel compiled) : IInferenceSession
    {
        public RuntimeInfo Info { get; } = new("builtin", Version, "cpu", "cpu") { FlushDenormals = compiled.FlushDenormals };
        public IReadOnlyList<string> InputNames => compiled.InputNames;
        public IReadOnlyList<string> OutputNames => compiled.OutputNames;
        public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string>? outputs = null) =>
            compiled.Forward(inputs, outputs).Values;
        public void Dispose() { }
    }
}
