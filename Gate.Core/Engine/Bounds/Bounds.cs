using Gate.Core.Tensors;

namespace Gate.Core.Engine.Bounds;

/// <summary>
/// Element-wise bounds on one tensor (batch of one), in float64. A constant (an initializer or a folded
/// subgraph) is carried as a degenerate interval with <see cref="Constant"/> set, so that operator rules can
/// tell weights from variables and read integer operands such as Reshape's target shape.
/// </summary>
public sealed class IntervalBounds
{
    public int[] Shape { get; }
    public double[] Lower { get; }
    public double[] Upper { get; }
    public Tensor? Constant { get; }
    public int Length => Lower.Length;
    public bool IsConstant => Constant is not null;

    private IntervalBounds(int[] shape, double[] lower, double[] upper, Tensor? constant)
    {
        if (lower.Length != Tensor.ElementCount(shape) || upper.Length != lower.Length)
            throw new ArgumentException($"bounds of {lower.Length}/{upper.Length} values do not fit shape [{string.Join(",", shape)}]");
        Shape = shape; Lower = lower; Upper = upper; Constant = constant;
    }

    public static IntervalBounds Box(int[] shape, double[] lower, double[] upper) => new(shape, lower, upper, null);

    public static IntervalBounds Of(Tensor constant)
    {
        var v = constant.ToDoubleArray();
        return new(constant.Shape, v, v, constant);
    }

    public IntervalBounds Reshape(int[] shape) => new(shape, Lower, Upper, Constant?.Reshape(shape));

    /// <summary>Largest absolute value any element can take.</summary>
    public double Magnitude(int i) => Math.Max(Math.Abs(Lower[i]), Math.Abs(Upper[i]));
}

/// <summary>What <see cref="Engine.Operator.BackwardLinear"/> receives.</summary>
/// <param name="Rows">Number of linear functions S being bounded from below.</param>
/// <param name="Lambda">Coefficients on output 0, row-major S × |output|.</param>
/// <param name="Inputs">Bounds (or constants) of every input; null for an omitted optional input.</param>
/// <param name="Output">Bounds of output 0 (shape, and the interval where a rule wants it).</param>
/// <param name="Alpha">Lower-bound slopes in [0,1] for relaxations that have a free one (ReLU), S × |input 0|;
/// null = the rule's default choice.</param>
public sealed record LinearBackwardRequest(int Rows, double[] Lambda, IntervalBounds?[] Inputs, IntervalBounds Output, double[]? Alpha = null);

/// <summary>Coefficients on each input (null for constants and omitted inputs) and the constant term, per row.</summary>
public sealed record LinearBackward(double[]?[] InputLambdas, double[] Bias);

/// <summary>
/// Outward rounding for bounds computed in float64. A result obtained as a sum of n products of float64 values
/// differs from the exact real value by at most γ(n)·Σ|terms| with γ(n) = n·u/(1−n·u), u = 2⁻⁵³, whatever the
/// summation order (Higham, Accuracy and Stability, §3.1). Rules therefore track the magnitude Σ|terms| beside
/// each value and push lower bounds down / upper bounds up by γ(n+4)·magnitude, then by one more ulp and by the
/// smallest normal number (so that underflow cannot make a bound inward). The +4 covers the few extra operations
/// (centre/radius, scaling, bias) every rule performs.
/// </summary>
public static class Outward
{
    private const double U = 1.0 / (1L << 53);

    public static double Gamma(int n) { double t = (n + 4) * U; return t / (1 - t) * 1.0000001; }

    public static double Down(double value, double magnitude, int terms) =>
        double.IsNaN(value) ? double.NegativeInfinity : Math.BitDecrement(value - Gamma(terms) * magnitude - 2.2250738585072014E-308);

    public static double Up(double value, double magnitude, int terms) =>
        double.IsNaN(value) ? double.PositiveInfinity : Math.BitIncrement(value + Gamma(terms) * magnitude + 2.2250738585072014E-308);

    /// <summary>Bounds on y = Σ λᵢ·xᵢ + c over the box: lower (or upper) with outward rounding.</summary>
    public static (double lo, double hi) LinearOverBox(ReadOnlySpan<double> lambda, ReadOnlySpan<double> l, ReadOnlySpan<double> u, double c)
    {
        double lo = c, hi = c, mag = Math.Abs(c);
        for (int j = 0; j < lambda.Length; j++)
        {
            double a = lambda[j];
            if (a == 0) continue;
            double p = a * l[j], q = a * u[j];
            if (p <= q) { lo += p; hi += q; } else { lo += q; hi += p; }
            mag += Math.Max(Math.Abs(p), Math.Abs(q));
        }
        return (Down(lo, mag, lambda.Length), Up(hi, mag, lambda.Length));
    }
}

/// <summary>Raised when a graph uses an operator without bound rules: the prover answers "unknown".</summary>
public sealed class BoundsUnsupportedException(string message) : Exception(message);
