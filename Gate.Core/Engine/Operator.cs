using Gate.Core.Model;
using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine;

/// <summary>What a kernel sees of its call site: the node (attributes, names) and the opset in force.</summary>
public readonly record struct OpContext(Node Node, long Opset)
{
    public string Where => Node.DisplayName;

    /// <summary>
    /// During a backward pass: which inputs lie on a path to a requested gradient (null = all). Kernels may skip
    /// the others (e.g. Conv skips dW when only the input gradient is wanted) and return null for them.
    /// </summary>
    public bool[]? GradientsNeeded { get; init; }

    public bool NeedsGradient(int input) => GradientsNeeded is null || (input < GradientsNeeded.Length && GradientsNeeded[input]);

    /// <summary>During a forward pass run by <see cref="CompiledModel"/>: where kernels rent their outputs.</summary>
    public PassBuffers? Buffers { get; init; }

    /// <summary>
    /// An output array for a kernel that writes every element: recycled from earlier passes when the engine runs
    /// the graph (contents undefined), a fresh zeroed array otherwise.
    /// </summary>
    public float[] RentFloats(int length) => Buffers?.Rent(length) ?? new float[length];
}

/// <summary>
/// One ONNX operator, in one place: its shape rule, forward kernel and vector-Jacobian product (and, later,
/// bound-propagation rules). Operators are stateless singletons registered in <see cref="OperatorRegistry"/>.
/// </summary>
public abstract class Operator
{
    public abstract string OpType { get; }
    public virtual string Domain => "";

    /// <summary>
    /// Shape rule: output shapes from input shapes (an entry is null where unknown). The default says "unknown";
    /// kernels still validate shapes at run time.
    /// </summary>
    public virtual int[]?[] InferShapes(OpContext ctx, int[]?[] inputShapes) => new int[]?[ctx.Node.Outputs.Length];

    /// <summary>
    /// Why this node cannot be run although the operator is implemented (an attribute value the kernel does not
    /// support), or null. Asked when the model is compiled, so such a model is refused up front with the reason.
    /// </summary>
    public virtual string? Unsupported(Node node) => null;

    /// <summary>Forward kernel. <paramref name="inputs"/>[i] is null where an optional input is omitted.</summary>
    public abstract Tensor[] Forward(OpContext ctx, Tensor?[] inputs);

    /// <summary>False for operators whose outputs are piecewise constant or discrete (ArgMax, comparisons, Shape...).</summary>
    public virtual bool IsDifferentiable => true;

    /// <summary>
    /// Vector-Jacobian product: given the forward inputs/outputs and the gradient of a scalar with respect to each
    /// output (null = zero), return the gradient with respect to each input (null = none / not differentiable).
    /// </summary>
    public virtual Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] outputGrads) =>
        throw new NotDifferentiableException($"{ctx.Where}: operator {OpType} has no gradient");

    /// <summary>
    /// Interval bound propagation (IBP): sound element-wise bounds on output 0 given bounds (or constants) for the
    /// inputs, computed in float64 and rounded outward (see <see cref="Outward"/>). Null = not supported, which
    /// makes the prover answer "unknown" for graphs that use the operator, never a wrong answer.
    /// </summary>
    public virtual IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => null;

    /// <summary>
    /// CROWN backward rule: given linear coefficients Λ on output 0 (rows of a specification being lower-bounded),
    /// returns coefficients on each variable input and the constant term such that Λ·y ≥ Σ Λᵢ·xᵢ + bias for every
    /// input inside the given bounds. Linear operators are exact; nonlinear ones use a sound linear relaxation.
    /// Null = not supported (the prover then answers "unknown").
    /// </summary>
    public virtual LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest request) => null;

    /// <summary>True for element-wise nonlinearities whose CROWN relaxation depends on the input's bounds (ReLU,
    /// Sigmoid, Tanh): the bound propagator tightens those inputs' bounds before relaxing them.</summary>
    public virtual bool RelaxesNonlinearity => false;

    /// <summary>
    /// Float32 forward error through this operator, for operators that are neither affine nor a monotone
    /// 1-Lipschitz element-wise function (the two cases <c>BoundNetwork.Float32Error</c> handles generically):
    /// a bound, per element of output 0, on |f₃₂(x̃) − f(x)| where x and x̃ lie in <paramref name="inputs"/> (exact
    /// bounds already widened by the error) and |x̃ − x| ≤ <paramref name="errors"/> element-wise (null for
    /// constants): the carried error plus this operator's own float32 rounding. Null = the generic rule applies,
    /// which treats the operator as affine (or as relaxed, see <see cref="RelaxesNonlinearity"/>); every nonlinear
    /// operator with bound rules must therefore override this.
    /// </summary>
    public virtual double[]? FloatError(OpContext ctx, IntervalBounds?[] inputs, double[]?[] errors) => null;
}

public sealed class NotDifferentiableException(string message) : Exception(message);

/// <summary>Raised by kernels for inputs they cannot process (wrong shapes, bad attributes); names the node.</summary>
public sealed class OperatorException(string message) : GateInputException(message);
