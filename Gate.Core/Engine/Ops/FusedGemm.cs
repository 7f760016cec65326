using Gate.Core.Tensors;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// com.microsoft FusedGemm, which ONNX Runtime's graph optimiser writes when it saves a model: Gemm followed by the
/// activation named in its <c>activation</c> attribute. Forward and gradient are those of the two operators in turn
/// (the activation's gradient needs the Gemm result, recomputed in the backward pass). Only activations whose
/// operator takes no attribute are fused here (none, Relu, Sigmoid, Tanh): the others read attributes that FusedGemm
/// renames (activation_alpha), and are refused with that reason. No bound rules: the prover answers "unknown".
/// </summary>
public sealed class FusedGemmOp : Operator
{
    public override string OpType => "FusedGemm";
    public override string Domain => "com.microsoft";

    private static readonly GemmOp Gemm = new();

    private static readonly Dictionary<string, Operator> Activations = new(StringComparer.Ordinal)
    {
        ["Relu"] = new ReluOp(), ["Sigmoid"] = new SigmoidOp(), ["Tanh"] = new TanhOp(),
    };

    private static Operator? Activation(OpContext ctx) => ctx.Node.GetString("activation", "") is var a && a.Length == 0 ? null
        : Activations.TryGetValue(a, out var op) ? op : throw new OperatorException($"{ctx.Where}: {Unsupported(a)}");

    private static string Unsupported(string activation) =>
        $"FusedGemm with activation '{activation}' is not implemented (its parameters come as activation_alpha/activation_beta; implemented: none, " +
        $"{string.Join(", ", Activations.Keys)}); export without ONNX Runtime's graph optimisation or run the model with runtime onnxruntime";

    public override string? Unsupported(Model.Node node) =>
        node.GetString("activation", "") is var a && a.Length > 0 && !Activations.ContainsKey(a) ? Unsupported(a) : null;

    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => Gemm.InferShapes(ctx, s);

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var act = Activation(ctx);
        var z = Gemm.Forward(ctx, inputs);
        return act is null ? z : act.Forward(ctx, [z[0]]);
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] outputGrads)
    {
        var act = Activation(ctx);
        if (act is null) return Gemm.Backward(ctx, inputs, outputs, outputGrads);
        // The activation's input is the Gemm result: recomputed without the pass's buffers (the tape holds only y).
        var z = Gemm.Forward(ctx with { Buffers = null }, inputs)[0];
        var dz = act.Backward(ctx with { GradientsNeeded = null }, [z], outputs, outputGrads)[0];
        return Gemm.Backward(ctx, inputs, [z], [dz]);
    }
}
