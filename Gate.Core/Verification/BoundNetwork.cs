using Gate.Core.Engine;
using Gate.Core.Engine.Bounds;
using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Core.Verification;

/// <summary>A ReLU split in branch and bound: neuron <see cref="Index"/> of tensor <see cref="Tensor"/> (a ReLU's
/// input) is restricted to ≥ 0 (<see cref="Active"/>) or ≤ 0.</summary>
public readonly record struct NeuronSplit(string Tensor, int Index, bool Active);

/// <summary>The bounds of one sub-problem: lower bounds of each specification row, and what guides splitting.</summary>
public sealed class SpecBounds
{
    /// <summary>Sound lower bound of row s of C·y − d over the box, for the model as it runs in float32.</summary>
    public required double[] Lower { get; init; }
    /// <summary>For each row, the box vertex minimising the final linear bound (a good attack starting point).</summary>
    public required double[][] Minimisers { get; init; }
    /// <summary>Coefficients of the final linear bound on the input, per row (for choosing an input to split).</summary>
    public required double[][] InputLambda { get; init; }
    /// <summary>Bounds of every ReLU input tensor used (after splits), for choosing a neuron to split.</summary>
    public required IReadOnlyDictionary<string, IntervalBounds> ReluInputs { get; init; }
    /// <summary>Coefficient on each ReLU output for the chosen row (split heuristics).</summary>
    public required IReadOnlyDictionary<string, double[]> ReluLambda { get; init; }
    /// <summary>True when the splits contradict each other (an empty sub-domain, vacuously verified).</summary>
    public bool Infeasible { get; init; }
}

/// <summary>
/// Bound propagation over the engine's IR: interval bounds (IBP) and CROWN (backward linear relaxation with
/// optimisable ReLU lower slopes), using the bound rules that live in each <see cref="Operator"/>.
///
/// Soundness under floating point: all bounds are computed in float64 for the exact real-valued network whose
/// weights are the model's float32 weights (exactly representable in float64). Operator rules round outward
/// (<see cref="Outward"/>). The deployed model runs in float32, so every output bound is finally widened by
/// <see cref="Float32Error"/>, a forward error bound: a node whose largest variable input has n elements computes each
/// value from at most n products, so in float32 (any summation order, with or without FMA) its error is at most
/// γ₃₂(n+2)·M, M the value of the same node on magnitudes (|W|·|x| + |b|), plus, for transcendental activations,
/// 1e-6 relative; errors already present in the inputs propagate through the same interval rule: an affine
/// operator changes by at most the distance between its images of [−E, E] and of 0, and a relaxed nonlinearity
/// (ReLU/Sigmoid/Tanh, 1-Lipschitz) by at most the width of its image of [−E, E]. The float64 rounding inside CROWN's backward products is
/// ≤ γ₆₄ times the same magnitudes, 2²⁹ times smaller than that margin, and is covered by scaling it by 1.001.
/// </summary>
public sealed class BoundNetwork
{
    private readonly Node[] _nodes;
    private readonly Operator[] _ops;
    private readonly OpContext[] _ctx;
    private readonly Dictionary<string, IntervalBounds> _constants = new();
    private readonly Dictionary<string, int> _producer = new();

    public string InputName { get; }
    public int[] InputShape { get; }
    public int InputSize { get; }
    public string OutputName { get; }
    public int OutputSize { get; private set; }
    /// <summary>Why bounds cannot be computed (an operator without bound rules), or null.</summary>
    public string? Unsupported { get; private set; }

    public BoundNetwork(OnnxModel model, string? output = null)
    {
        var g = model.Graph;
        if (g.Inputs.Count != 1) throw new GateInputException($"{model.FileName}: the prover handles models with one input, this one has {g.Inputs.Count}");
        var input = g.Inputs[0];
        InputName = input.Name;
        InputShape = input.Shape?.Select(d => (int)(d.Value ?? 1)).ToArray()
            ?? throw new GateInputException($"{model.FileName}: input '{input.Name}' has no declared shape");
        InputSize = Tensor.ElementCount(InputShape);
        OutputName = output ?? g.Outputs[0].Name;

        foreach (var (name, t) in g.Initializers) _constants[name] = IntervalBounds.Of(t);
        var variable = new HashSet<string> { InputName };
        var nodes = new List<Node>(); var ops = new List<Operator>(); var ctxs = new List<OpContext>();
        foreach (var node in g.Nodes)
        {
            var op = OperatorRegistry.Find(node.Domain, node.OpType);
            var ctx = new OpContext(node, model.Opsets.TryGetValue(node.Domain, out var v) ? v : model.DefaultOpset);
            if (node.Inputs.Any(variable.Contains))
            {
                if (op is null) { Unsupported ??= $"operator {node.OpType} is not implemented by the engine"; continue; }
                foreach (var o in node.Outputs) if (o.Length > 0) { variable.Add(o); _producer[o] = nodes.Count; }
                nodes.Add(node); ops.Add(op); ctxs.Add(ctx);
            }
            else
            {
                // A node of constants only (a shape computation, Constant): folded once here.
                if (op is null) { Unsupported ??= $"operator {node.OpType} is not implemented by the engine"; continue; }
                var res = op.Forward(ctx, node.Inputs.Select(n => n.Length == 0 ? null : _constants[n].Constant).ToArray());
                for (int i = 0; i < node.Outputs.Length && i < res.Length; i++) _constants[node.Outputs[i]] = IntervalBounds.Of(res[i]);
            }
        }
        _nodes = nodes.ToArray(); _ops = ops.ToArray(); _ctx = ctxs.ToArray();
        if (!variable.Contains(OutputName)) Unsupported ??= $"output '{OutputName}' does not depend on the input";
        if (Unsupported is null)
        {
            try
            {
                var zero = new double[InputSize];
                OutputSize = Interval(zero, zero)[OutputName].Length;
            }
            catch (BoundsUnsupportedException e) { Unsupported = e.Message; }
        }
    }

    private IntervalBounds?[] Args(int k, IReadOnlyDictionary<string, IntervalBounds> values) =>
        _nodes[k].Inputs.Select(n => n.Length == 0 ? null : values.TryGetValue(n, out var b) ? b : _constants[n]).ToArray();

    private static IntervalBounds Clamp(IntervalBounds b, IEnumerable<NeuronSplit> splits, ref bool infeasible)
    {
        var lo = (double[])b.Lower.Clone(); var hi = (double[])b.Upper.Clone();
        foreach (var s in splits)
        {
            if (s.Active) lo[s.Index] = Math.Max(lo[s.Index], 0); else hi[s.Index] = Math.Min(hi[s.Index], 0);
            if (lo[s.Index] > hi[s.Index]) infeasible = true;
        }
        return IntervalBounds.Box(b.Shape, lo, hi);
    }

    /// <summary>IBP: bounds of every variable tensor over the input box (batch of one).</summary>
    public Dictionary<string, IntervalBounds> Interval(double[] lower, double[] upper, IReadOnlyList<NeuronSplit>? splits = null)
    {
        var values = new Dictionary<string, IntervalBounds> { [InputName] = IntervalBounds.Box(InputShape, lower, upper) };
        bool infeasible = false;
        for (int k = 0; k < _nodes.Length; k++)
        {
            var args = Args(k, values);
            var y = _ops[k].PropagateInterval(_ctx[k], args)
                ?? throw new BoundsUnsupportedException($"{_ctx[k].Where}: no interval rule for {_nodes[k].OpType} with these operands");
            values[_nodes[k].Outputs[0]] = y;
            if (splits is not null && _ops[k].RelaxesNonlinearity)
                ApplySplits(values, _nodes[k].Inputs[0], splits, ref infeasible);
        }
        return values;
    }

    private static void ApplySplits(Dictionary<string, IntervalBounds> values, string tensor, IReadOnlyList<NeuronSplit> splits, ref bool infeasible)
    {
        var mine = splits.Where(s => s.Tensor == tensor).ToList();
        if (mine.Count > 0) values[tensor] = Clamp(values[tensor], mine, ref infeasible);
    }

    /// <summary>
    /// One CROWN backward pass from tensor <paramref name="target"/>: lower bounds of Λ·target + c over the box,
    /// using <paramref name="bounds"/> for every intermediate relaxation. Returns the bounds and the input coefficients.
    /// </summary>
    private (double[] lower, double[] inputLambda, Dictionary<string, double[]> reluLambda) Backward(string target, int rows, double[] lambda,
        double[] constant, IReadOnlyDictionary<string, IntervalBounds> bounds, IReadOnlyDictionary<string, double[]>? alpha, bool keepRelu)
    {
        var lambdas = new Dictionary<string, double[]> { [target] = lambda };
        var bias = (double[])constant.Clone();
        var reluLambda = new Dictionary<string, double[]>();
        int last = _producer[target];
        for (int k = last; k >= 0; k--)
        {
            var outName = _nodes[k].Outputs[0];
            if (!lambdas.Remove(outName, out var lam)) continue;
            if (keepRelu && _ops[k].RelaxesNonlinearity) reluLambda[_nodes[k].Inputs[0]] = lam;
            var args = Args(k, bounds);
            double[]? a = null;
            if (alpha is not null) alpha.TryGetValue(_nodes[k].Inputs[0], out a);
            var res = _ops[k].BackwardLinear(_ctx[k], new LinearBackwardRequest(rows, lam, args, bounds[outName], a))
                ?? throw new BoundsUnsupportedException($"{_ctx[k].Where}: no CROWN rule for {_nodes[k].OpType} with these operands");
            for (int s = 0; s < rows; s++) bias[s] += res.Bias[s];
            for (int i = 0; i < res.InputLambdas.Length; i++)
            {
                var li = res.InputLambdas[i];
                var name = _nodes[k].Inputs[i];
                if (li is null || name.Length == 0 || _constants.ContainsKey(name)) continue;
                if (lambdas.TryGetValue(name, out var prev)) for (int j = 0; j < li.Length; j++) prev[j] += li[j];
                else lambdas[name] = li;
            }
        }
        var x = bounds[InputName];
        var lx = lambdas.TryGetValue(InputName, out var v) ? v : new double[rows * InputSize];
        var lower = new double[rows];
        for (int s = 0; s < rows; s++)
            lower[s] = Outward.LinearOverBox(lx.AsSpan(s * InputSize, InputSize), x.Lower, x.Upper, bias[s]).lo;
        return (lower, lx, reluLambda);
    }

    /// <summary>
    /// CROWN intermediate bounds: IBP first, then each relaxed operator's input is tightened by a backward pass
    /// (rows for its unstable elements only, lower and upper at once) before later layers use it.
    /// </summary>
    public Dictionary<string, IntervalBounds> Crown(double[] lower, double[] upper, IReadOnlyList<NeuronSplit>? splits, out bool infeasible)
    {
        var values = new Dictionary<string, IntervalBounds> { [InputName] = IntervalBounds.Box(InputShape, lower, upper) };
        infeasible = false;
        var tightened = new HashSet<string> { InputName };
        for (int k = 0; k < _nodes.Length; k++)
        {
            if (_ops[k].RelaxesNonlinearity && tightened.Add(_nodes[k].Inputs[0]))
            {
                var name = _nodes[k].Inputs[0];
                var ib = values[name];
                var rowsOf = Enumerable.Range(0, ib.Length).Where(i => ib.Lower[i] < 0 && ib.Upper[i] > 0 || _ops[k].OpType != "Relu").ToArray();
                if (rowsOf.Length > 0)
                {
                    int rows = 2 * rowsOf.Length, n = ib.Length;
                    var lam = new double[rows * n];
                    for (int r = 0; r < rowsOf.Length; r++) { lam[(2 * r) * n + rowsOf[r]] = 1; lam[(2 * r + 1) * n + rowsOf[r]] = -1; }
                    var (lb, _, _) = Backward(name, rows, lam, new double[rows], values, null, false);
                    var lo = (double[])ib.Lower.Clone(); var hi = (double[])ib.Upper.Clone();
                    for (int r = 0; r < rowsOf.Length; r++)
                    {
                        lo[rowsOf[r]] = Math.Max(lo[rowsOf[r]], lb[2 * r]);
                        hi[rowsOf[r]] = Math.Min(hi[rowsOf[r]], -lb[2 * r + 1]);
                    }
                    values[name] = IntervalBounds.Box(ib.Shape, lo, hi);
                }
                if (splits is not null) ApplySplits(values, name, splits, ref infeasible);
            }
            var y = _ops[k].PropagateInterval(_ctx[k], Args(k, values))
                ?? throw new BoundsUnsupportedException($"{_ctx[k].Where}: no interval rule for {_nodes[k].OpType} with these operands");
            values[_nodes[k].Outputs[0]] = y;
        }
        return values;
    }

    /// <summary>
    /// A bound on |float32 model output − exact output| per output element over the box (see the class comment).
    /// </summary>
    public double[] Float32Error(IReadOnlyDictionary<string, IntervalBounds> ibp)
    {
        const double u32 = 1.0 / (1 << 24);
        var err = new Dictionary<string, double[]> { [InputName] = new double[InputSize] };
        var rounding = new double[_nodes.Length][];
        var ownRule = new bool[_nodes.Length];
        for (int k = 0; k < _nodes.Length; k++)
        {
            var node = _nodes[k];
            var args = Args(k, ibp);
            // Nonlinear operators (MaxPool, Softmax, Erf, ...) state their own error rule on the widened region.
            var errs = node.Inputs.Select((name, i) => args[i] is { IsConstant: false } ? err[name] : null).ToArray();
            var widenedArgs = args.Select((a, i) => a is null || a.IsConstant ? a : Widen(a, errs[i]!)).ToArray();
            if (_ops[k].FloatError(_ctx[k], widenedArgs, errs) is { } own)
            {
                err[node.Outputs[0]] = own;
                rounding[k] = own;
                ownRule[k] = true;
                continue;
            }
            // Accumulation length: at most the largest variable operand (a dense or convolution layer sums over
            // its input; a convolution kernel larger than its padded input is the one case this would miss).
            int n = args.Where(a => a is { IsConstant: false }).Max(a => a!.Length) + 2;
            double gamma = n * u32 / (1 - n * u32);
            // Magnitudes: the same rule on symmetric boxes [−m, m] with m the largest |value| (plus earlier error).
            var magArgs = new IntervalBounds?[args.Length];
            var errArgs = new IntervalBounds?[args.Length];
            for (int i = 0; i < args.Length; i++)
            {
                var a = args[i];
                if (a is null || a.IsConstant) { magArgs[i] = a; errArgs[i] = a; continue; }
                var e = err[node.Inputs[i]];
                var m = new double[a.Length];
                for (int j = 0; j < m.Length; j++) m[j] = a.Magnitude(j) + e[j];
                magArgs[i] = IntervalBounds.Box(a.Shape, m.Select(v => -v).ToArray(), m);
                errArgs[i] = IntervalBounds.Box(a.Shape, e.Select(v => -v).ToArray(), e);
            }
            var mag = _ops[k].PropagateInterval(_ctx[k], magArgs)!;
            var prop = _ops[k].PropagateInterval(_ctx[k], errArgs)!;
            bool relaxed = _ops[k].RelaxesNonlinearity;
            // Affine operators move by at most the deviation of [−E, E]'s image from the image of 0; for the
            // relaxed nonlinearities (1-Lipschitz, not affine) the full width of the image is used instead.
            var at0 = relaxed ? null : _ops[k].PropagateInterval(_ctx[k], errArgs.Select(a => a is null || a.IsConstant ? a
                : IntervalBounds.Box(a.Shape, new double[a.Length], new double[a.Length])).ToArray())!;
            double extra = relaxed ? 1e-6 : 0;
            var outErr = new double[mag.Length];
            var local = new double[mag.Length];
            for (int j = 0; j < outErr.Length; j++)
            {
                double mj = Math.Max(Math.Abs(mag.Lower[j]), Math.Abs(mag.Upper[j]));
                double moved = at0 is null ? prop.Upper[j] - prop.Lower[j] : Math.Max(prop.Upper[j] - at0.Lower[j], at0.Upper[j] - prop.Lower[j]);
                local[j] = (gamma + extra) * mj + 1e-30;
                outErr[j] = moved + local[j];
            }
            err[node.Outputs[0]] = outErr;
            rounding[k] = local;
        }
        var coarse = err[OutputName];
        var fine = JacobianError(ibp, err, rounding, ownRule);
        return coarse.Select((v, j) => Math.Min(v, fine[j])).ToArray();
    }

    private static IntervalBounds Widen(IntervalBounds b, double[] e) =>
        IntervalBounds.Box(b.Shape, b.Lower.Select((v, j) => Math.BitDecrement(v - e[j])).ToArray(), b.Upper.Select((v, j) => Math.BitIncrement(v + e[j])).ToArray());

    /// <summary>
    /// A tighter bound on the same error: writing the float32 model as the exact one with a rounding perturbation
    /// δₖ (|δₖ| ≤ rₖ) after each node, the telescoping sum over "first k nodes in float32, the rest exact" gives
    /// |y₃₂ − y| ≤ Σₖ |Jₖ|·rₖ, where Jₖ ranges over the Jacobians from node k to the output on the region the
    /// float32 values can reach (the exact bounds widened by the coarse error). Jacobians are carried as
    /// centre ± radius, back through each operator's own CROWN rule (exact for affine operators; the radius goes
    /// through the same rule with |constants|), and through a relaxed nonlinearity as a derivative in [0, 1]
    /// (all of ReLU, Sigmoid and Tanh are monotone and 1-Lipschitz), exactly 1 or 0 for a ReLU of fixed sign.
    /// </summary>
    private double[] JacobianError(IReadOnlyDictionary<string, IntervalBounds> ibp, Dictionary<string, double[]> coarse, double[][] rounding, bool[] ownRule)
    {
        // Only affine operators and ReLU/Sigmoid/Tanh have the Jacobian rules below; past any other operator the
        // coarse bound stands alone.
        if (ownRule.Any(v => v)) return Enumerable.Repeat(double.PositiveInfinity, OutputSize).ToArray();
        int rows = OutputSize;
        var widened = new Dictionary<string, IntervalBounds>();
        foreach (var (name, b) in ibp)
            widened[name] = coarse.TryGetValue(name, out var e) ? Widen(b, e) : b;
        var eye = new double[rows * rows];
        for (int j = 0; j < rows; j++) eye[j * rows + j] = 1;
        var centre = new Dictionary<string, double[]> { [OutputName] = eye };
        var radius = new Dictionary<string, double[]> { [OutputName] = new double[rows * rows] };
        var total = new double[rows];
        for (int k = _nodes.Length - 1; k >= 0; k--)
        {
            var outName = _nodes[k].Outputs[0];
            if (!centre.Remove(outName, out var jc)) continue;
            radius.Remove(outName, out var jr);
            int n = rounding[k].Length;
            for (int s = 0; s < rows; s++)
                for (int j = 0; j < n; j++) total[s] += (Math.Abs(jc[s * n + j]) + jr![s * n + j]) * rounding[k][j];
            var args = Args(k, widened);
            double[]?[] cIn, rIn;
            if (_ops[k].RelaxesNonlinearity)
            {
                var x = args[0]!;
                bool relu = _nodes[k].OpType == "Relu";
                var c = new double[rows * n]; var r = new double[rows * n];
                for (int j = 0; j < n; j++)
                {
                    double lo = relu && x.Upper[j] <= 0 ? 0 : relu && x.Lower[j] >= 0 ? 1 : 0, hi = relu && x.Upper[j] <= 0 ? 0 : 1;
                    double sc = 0.5 * (lo + hi), sr = 0.5 * (hi - lo);
                    for (int s = 0; s < rows; s++)
                    {
                        double a = jc[s * n + j];
                        c[s * n + j] = a * sc;
                        r[s * n + j] = Math.Abs(a) * sr + jr![s * n + j] * (sc + sr);
                    }
                }
                cIn = [c]; rIn = [r];
            }
            else
            {
                var absArgs = args.Select(a => a is { IsConstant: true } && a.Constant!.Type.IsFloating()
                    ? IntervalBounds.Of(Tensor.FromDoubles(a.Shape, a.Lower.Select(Math.Abs).ToArray())) : a).ToArray();
                var cb = _ops[k].BackwardLinear(_ctx[k], new LinearBackwardRequest(rows, jc, args, widened[outName]));
                var rb = _ops[k].BackwardLinear(_ctx[k], new LinearBackwardRequest(rows, jr!, absArgs, widened[outName]));
                if (cb is null || rb is null) return Enumerable.Repeat(double.PositiveInfinity, rows).ToArray();
                cIn = cb.InputLambdas; rIn = rb.InputLambdas.Select(v => v?.Select(Math.Abs).ToArray()).ToArray();
            }
            for (int i = 0; i < cIn.Length; i++)
            {
                var name = _nodes[k].Inputs[i];
                if (cIn[i] is null || name.Length == 0 || _constants.ContainsKey(name)) continue;
                if (centre.TryGetValue(name, out var pc)) { for (int j = 0; j < pc.Length; j++) { pc[j] += cIn[i]![j]; radius[name][j] += rIn[i]![j]; } }
                else { centre[name] = cIn[i]!; radius[name] = rIn[i]!; }
            }
        }
        return total;
    }

    /// <summary>
    /// Sound lower bounds of each row of C·y − d (C: rows × |y|) over the box, for the float32 model, with
    /// CROWN intermediate bounds and <paramref name="alphaSteps"/> steps of projected ascent on the ReLU lower
    /// slopes (per row and neuron). The ascent direction is Λ·ẑ, ẑ the pre-activation at the bound's minimising
    /// input vertex: exact for the first ReLU layer, a heuristic deeper down. Any slope in [0,1] is sound, so the
    /// heuristic affects tightness only, and the best bound seen is kept.
    /// </summary>
    public SpecBounds SpecLower(double[] lower, double[] upper, double[] c, double[] d, IReadOnlyList<NeuronSplit>? splits = null, int alphaSteps = 0)
    {
        if (Unsupported is not null) throw new BoundsUnsupportedException(Unsupported);
        int rows = d.Length;
        var bounds = Crown(lower, upper, splits, out bool infeasible);
        var ibpNoSplit = splits is { Count: > 0 } ? Interval(lower, upper) : bounds;
        var fErr = Float32Error(ibpNoSplit);
        var bias = d.Select(v => -v).ToArray();
        var (best, lx, reluLam) = Backward(OutputName, rows, (double[])c.Clone(), bias, bounds, null, true);
        var bestLx = (double[])lx.Clone();
        var bestRelu = reluLam;
        if (alphaSteps > 0)
        {
            var alpha = new Dictionary<string, double[]>();
            foreach (var (name, _) in reluLam)
            {
                var b = bounds[name]; var a = new double[rows * b.Length];
                for (int s = 0; s < rows; s++) for (int i = 0; i < b.Length; i++) a[s * b.Length + i] = b.Upper[i] > -b.Lower[i] ? 1 : 0;
                alpha[name] = a;
            }
            var curLx = lx; var curRelu = reluLam;
            for (int step = 0; step < alphaSteps && alpha.Count > 0; step++)
            {
                double eta = 0.5 / (1 + step);
                for (int s = 0; s < rows; s++)
                {
                    var xs = Minimiser(curLx, s, bounds[InputName]);
                    var pre = Interval(xs, xs);
                    foreach (var (name, a) in alpha)
                    {
                        var lam = curRelu[name]; var z = pre[name]; var b = bounds[name];
                        int n = b.Length;
                        for (int i = 0; i < n; i++)
                            if (b.Lower[i] < 0 && b.Upper[i] > 0 && lam[s * n + i] > 0)
                            {
                                double zi = 0.5 * (z.Lower[i] + z.Upper[i]);
                                a[s * n + i] = Math.Clamp(a[s * n + i] + eta * Math.Sign(zi), 0, 1);
                            }
                    }
                }
                var (lb, lx2, rl2) = Backward(OutputName, rows, (double[])c.Clone(), bias, bounds, alpha, true);
                curLx = lx2; curRelu = rl2;
                for (int s = 0; s < rows; s++)
                    if (lb[s] > best[s])
                    {
                        best[s] = lb[s];
                        Array.Copy(lx2, s * InputSize, bestLx, s * InputSize, InputSize);
                    }
                bestRelu = rl2;
            }
        }
        var result = new double[rows];
        var mins = new double[rows][]; var lambdaRows = new double[rows][];
        // Both bounds are sound, so the final one is the better of CROWN and the interval bound of C·y − d
        // (CROWN is usually far tighter, but not provably so on every network).
        var ibpRows = SpecFromInterval(bounds[OutputName], fErr, c, d);
        for (int s = 0; s < rows; s++)
        {
            double e = 0;
            for (int j = 0; j < OutputSize; j++) e += Math.Abs(c[s * OutputSize + j]) * fErr[j];
            result[s] = Math.Max(best[s] - e * 1.001 - 1e-12 * (1 + Math.Abs(best[s])), ibpRows[s]);
            mins[s] = Minimiser(bestLx, s, bounds[InputName]);
            lambdaRows[s] = bestLx.AsSpan(s * InputSize, InputSize).ToArray();
        }
        int worst = Array.IndexOf(result, result.Max());
        return new SpecBounds
        {
            Lower = result, Minimisers = mins, InputLambda = lambdaRows, Infeasible = infeasible,
            ReluInputs = bestRelu.Keys.ToDictionary(k => k, k => bounds[k]),
            ReluLambda = bestRelu.ToDictionary(kv => kv.Key, kv => kv.Value.AsSpan(worst * bounds[kv.Key].Length, bounds[kv.Key].Length).ToArray()),
        };
    }

    /// <summary>Interval bounds of C·y − d (IBP only), for comparison and the "ibp" method.</summary>
    public double[] SpecLowerIbp(double[] lower, double[] upper, double[] c, double[] d)
    {
        if (Unsupported is not null) throw new BoundsUnsupportedException(Unsupported);
        var ibp = Interval(lower, upper);
        return SpecFromInterval(ibp[OutputName], Float32Error(ibp), c, d);
    }

    private double[] SpecFromInterval(IntervalBounds y, double[] fErr, double[] c, double[] d)
    {
        var res = new double[d.Length];
        for (int s = 0; s < d.Length; s++)
        {
            var row = c.AsSpan(s * OutputSize, OutputSize);
            var yl = y.Lower.Select((v, j) => v - fErr[j] * 1.001).ToArray();
            var yu = y.Upper.Select((v, j) => v + fErr[j] * 1.001).ToArray();
            res[s] = Outward.LinearOverBox(row, yl, yu, -d[s]).lo;
        }
        return res;
    }

    private double[] Minimiser(double[] lx, int s, IntervalBounds x)
    {
        var r = new double[InputSize];
        for (int j = 0; j < InputSize; j++) r[j] = lx[s * InputSize + j] >= 0 ? x.Lower[j] : x.Upper[j];
        return r;
    }
}
