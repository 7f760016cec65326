using Gate.Core.Tensors;

namespace Gate.Core.Engine;

/// <summary>
/// What white-box checks need of an engine: forward passes that capture intermediates and record a tape, and
/// input gradients from that tape. The built-in engine (<see cref="CompiledModel"/>) implements it everywhere; the
/// TorchSharp engine only inside the sandbox runner, where libtorch loads (see <see cref="WhiteBoxEngines"/>).
/// </summary>
public interface IWhiteBoxEngine
{
    /// <summary>"builtin" or "torch": recorded with every decision that used it.</summary>
    string Name { get; }
    /// <summary>Where it computes: "cpu", or "cuda:0" for the torch engine on a GPU (<see cref="TorchDevice"/>).</summary>
    string Device => TorchDevice.Cpu;
    /// <summary>Why it computes on the CPU although a GPU was asked for; null otherwise.</summary>
    string? GpuFallback => null;
    IReadOnlyList<string> InputNames { get; }
    IReadOnlyList<string> OutputNames { get; }

    /// <summary>Runs the graph; see <see cref="CompiledModel.Forward"/> for the contract every engine keeps.</summary>
    ForwardPass Forward(IReadOnlyDictionary<string, Tensor> inputs, IEnumerable<string>? outputs = null,
        IEnumerable<string>? capture = null, bool recordForBackward = false);

    /// <summary>Gradients of Σ seed·output with respect to <paramref name="wrt"/>; see <see cref="CompiledModel.Backward"/>.</summary>
    IReadOnlyDictionary<string, Tensor> Backward(ForwardPass pass, IReadOnlyDictionary<string, Tensor> outputGrads, IEnumerable<string> wrt);

    IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IEnumerable<string>? outputs = null) =>
        Forward(inputs, outputs).Values;
}
