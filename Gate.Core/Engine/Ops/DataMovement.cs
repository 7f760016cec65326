using Gate.Core.Tensors;
using Gate.Core.Engine.Bounds;

namespace Gate.Core.Engine.Ops;

/// <summary>
/// Operators that only move elements of input 0. Each states its index map once; forward gathers through it
/// and the gradient scatters back through it (see <see cref="TensorIndexing"/>).
/// </summary>
public abstract class IndexMapOp : Operator
{
    /// <summary>Output shape and, per output element, the input-0 element it reads (-1: a fill value).</summary>
    protected abstract (int[] Shape, int[] Index) Map(OpContext ctx, Tensor?[] inputs);
    protected virtual Tensor? Fill(OpContext ctx, Tensor?[] inputs) => null;

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var (shape, idx) = Map(ctx, inputs);
        return [TensorIndexing.Take(inputs[0]!, idx, shape, Fill(ctx, inputs))];
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var (_, idx) = Map(ctx, inputs);
        var r = new Tensor?[inputs.Length];
        r[0] = TensorIndexing.ScatterAdd(g[0]!, idx, inputs[0]!.Shape);
        return r;
    }

    /// <summary>Bounds move with the elements (exactly: nothing is computed); only input 0 may be variable.</summary>
    private BoundRules.SparseMap? BoundMap(OpContext ctx, IntervalBounds?[] inputs)
    {
        if (inputs.Skip(1).Any(t => t is { IsConstant: false })) return null;
        var ts = BoundRules.StandIns(inputs);
        var (shape, idx) = Map(ctx, ts);
        return BoundRules.SparseMap.Gather(shape, idx, Fill(ctx, ts) is { Length: > 0 } f ? f.GetDouble(0) : 0);
    }

    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) =>
        BoundMap(ctx, inputs) is { } m ? BoundRules.Sparse(m, inputs[0]) : null;

    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r)
    {
        if (BoundMap(ctx, r.Inputs) is not { } m) return null;
        var res = BoundRules.SparseBackward(r with { Inputs = [r.Inputs[0]] }, m);
        var all = new double[]?[r.Inputs.Length];
        all[0] = res.InputLambdas[0];
        return new LinearBackward(all, res.Bias);
    }

    /// <summary>Index map built from output coordinates: <paramref name="source"/> maps coordinates to an input offset.</summary>
    protected static int[] ByCoordinates(int[] outShape, Func<int[], int> source)
    {
        int n = Tensor.ElementCount(outShape);
        var idx = new int[n];
        var c = new int[outShape.Length];
        for (int e = 0; e < n; e++)
        {
            idx[e] = source(c);
            for (int ax = outShape.Length - 1; ax >= 0; ax--) { if (++c[ax] < outShape[ax]) break; c[ax] = 0; }
        }
        return idx;
    }
}

public sealed class TransposeOp : IndexMapOp
{
    public override string OpType => "Transpose";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        if (s[0] is null) return [null];
        var perm = ctx.Node.GetInts("perm") is { Length: > 0 } p ? p.Select(v => (int)v).ToArray() : Enumerable.Range(0, s[0]!.Length).Reverse().ToArray();
        return [perm.Select(a => s[0]![a]).ToArray()];
    }
    protected override (int[], int[]) Map(OpContext ctx, Tensor?[] inputs)
    {
        var s = inputs[0]!.Shape;
        var perm = ctx.Node.GetInts("perm") is { Length: > 0 } p ? p.Select(v => (int)v).ToArray() : Enumerable.Range(0, s.Length).Reverse().ToArray();
        if (perm.Length != s.Length || perm.Distinct().Count() != s.Length || perm.Any(v => v < 0 || v >= s.Length))
            throw new OperatorException($"{ctx.Where}: perm [{string.Join(",", perm)}] is not a permutation of rank {s.Length}");
        var st = TensorIndexing.Strides(s);
        var shape = perm.Select(a => s[a]).ToArray();
        return (shape, TensorIndexing.StridedIndex(shape, 0, perm.Select(a => st[a]).ToArray()));
    }
}

/// <summary>Slice: starts/ends/axes/steps as inputs (opset 10+) or attributes (before 10), clamped as ONNX specifies.</summary>
public sealed class SliceOp : IndexMapOp
{
    public override string OpType => "Slice";
    protected override (int[], int[]) Map(OpContext ctx, Tensor?[] inputs)
    {
        var s = inputs[0]!.Shape;
        long[] starts, ends; long[]? axes, steps;
        if (ctx.Opset < 10)
        {
            starts = ctx.Node.GetInts("starts") ?? []; ends = ctx.Node.GetInts("ends") ?? [];
            axes = ctx.Node.GetInts("axes"); steps = null;
        }
        else
        {
            starts = inputs[1]!.ToLongArray(); ends = inputs[2]!.ToLongArray();
            axes = TensorIndexing.LongsOf(inputs, 3); steps = TensorIndexing.LongsOf(inputs, 4);
        }
        if (starts.Length != ends.Length) throw new OperatorException($"{ctx.Where}: starts and ends differ in length");
        var shape = (int[])s.Clone();
        var st = TensorIndexing.Strides(s);
        var step = st.ToArray();
        long offset = 0;
        var seen = new HashSet<int>();
        for (int k = 0; k < starts.Length; k++)
        {
            int ax = TensorIndexing.Axis(axes is { Length: > 0 } ? axes[k] : k, s.Length, ctx);
            if (!seen.Add(ax)) throw new OperatorException($"{ctx.Where}: axis {ax} is sliced twice");
            long d = s[ax], sp = steps is { Length: > 0 } ? steps[k] : 1;
            if (sp == 0) throw new OperatorException($"{ctx.Where}: step 0 on axis {ax}");
            long b = starts[k], e = ends[k];
            if (b < 0) b += d;
            if (e < 0) e += d;
            if (sp > 0) { b = Math.Clamp(b, 0, d); e = Math.Clamp(e, 0, d); }
            else { b = Math.Clamp(b, 0, d - 1); e = Math.Clamp(e, -1, d - 1); }
            long len = sp > 0 ? (e - b + sp - 1) / sp : (b - e + (-sp) - 1) / (-sp);
            shape[ax] = (int)Math.Max(0, len);
            offset += b * st[ax];
            step[ax] = (int)(st[ax] * sp);
        }
        return (shape, TensorIndexing.StridedIndex(shape, Tensor.ElementCount(shape) == 0 ? 0 : (int)offset, step));
    }
}

/// <summary>Gather along an axis with (possibly negative) integer indices of any shape.</summary>
public sealed class GatherOp : IndexMapOp
{
    public override string OpType => "Gather";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        if (s[0] is null || s[1] is null) return [null];
        int axis = TensorIndexing.Axis(ctx.Node.GetInt("axis", 0), s[0]!.Length, ctx);
        return [[.. s[0]!.Take(axis), .. s[1]!, .. s[0]!.Skip(axis + 1)]];
    }
    protected override (int[], int[]) Map(OpContext ctx, Tensor?[] inputs)
    {
        var s = inputs[0]!.Shape; var ind = inputs[1]!;
        int axis = TensorIndexing.Axis(ctx.Node.GetInt("axis", 0), s.Length, ctx);
        int outer = s.Take(axis).Aggregate(1, (a, b) => a * b), inner = s.Skip(axis + 1).Aggregate(1, (a, b) => a * b), dim = s[axis];
        var shape = s.Take(axis).Concat(ind.Shape).Concat(s.Skip(axis + 1)).ToArray();
        var iv = ind.ToLongArray();
        var idx = new int[outer * iv.Length * inner];
        int p = 0;
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < iv.Length; j++)
            {
                long k = iv[j] < 0 ? iv[j] + dim : iv[j];
                if (k < 0 || k >= dim) throw new OperatorException($"{ctx.Where}: index {iv[j]} is out of range for axis {axis} of size {dim}");
                for (int q = 0; q < inner; q++) idx[p++] = ((int)(o * dim + k)) * inner + q;
            }
        return (shape, idx);
    }
}

public sealed class TileOp : IndexMapOp
{
    public override string OpType => "Tile";
    protected override (int[], int[]) Map(OpContext ctx, Tensor?[] inputs)
    {
        var s = inputs[0]!.Shape; var reps = inputs[1]!.ToLongArray();
        if (reps.Length != s.Length || reps.Any(r => r < 0)) throw new OperatorException($"{ctx.Where}: repeats must be {s.Length} non-negative values");
        var shape = s.Select((d, i) => (int)(d * reps[i])).ToArray();
        var st = TensorIndexing.Strides(s);
        return (shape, ByCoordinates(shape, c => { int o = 0; for (int i = 0; i < c.Length; i++) o += c[i] % s[i] * st[i]; return o; }));
    }
}

public sealed class ExpandOp : IndexMapOp
{
    public override string OpType => "Expand";
    protected override (int[], int[]) Map(OpContext ctx, Tensor?[] inputs)
    {
        var s = inputs[0]!.Shape;
        var target = inputs[1]!.ToLongArray().Select(v => (int)v).ToArray();
        var shape = Broadcast.Shape(s, target, ctx.Where);
        return (shape, Broadcast.SourceIndex(s, shape));
    }
}

/// <summary>Pad (constant, edge, reflect, wrap); pads/value/axes are inputs from opset 11, attributes before. Negative pads crop.</summary>
public sealed class PadOp : IndexMapOp
{
    public override string OpType => "Pad";

    protected override Tensor? Fill(OpContext ctx, Tensor?[] inputs)
    {
        if (ctx.Opset < 11) return Tensor.Scalar(ctx.Node.GetFloat("value", 0f));
        return inputs.Length > 2 && inputs[2] is { Length: > 0 } v ? v : null;
    }

    protected override (int[], int[]) Map(OpContext ctx, Tensor?[] inputs)
    {
        var s = inputs[0]!.Shape; int r = s.Length;
        long[] pads = ctx.Opset < 11 ? ctx.Node.GetInts("pads") ?? [] : inputs[1]!.ToLongArray();
        var axes = (ctx.Opset >= 18 ? TensorIndexing.LongsOf(inputs, 3) : null)?.Select(a => TensorIndexing.Axis(a, r, ctx)).ToArray() ?? Enumerable.Range(0, r).ToArray();
        if (pads.Length != 2 * axes.Length) throw new OperatorException($"{ctx.Where}: pads must have {2 * axes.Length} entries, got {pads.Length}");
        var pb = new int[r]; var pe = new int[r];
        for (int k = 0; k < axes.Length; k++) { pb[axes[k]] = (int)pads[k]; pe[axes[k]] = (int)pads[k + axes.Length]; }
        var shape = s.Select((d, i) => d + pb[i] + pe[i]).ToArray();
        if (shape.Any(d => d < 0)) throw new OperatorException($"{ctx.Where}: pads crop more than the input has");
        string mode = ctx.Node.GetString("mode", "constant");
        var st = TensorIndexing.Strides(s);
        return (shape, ByCoordinates(shape, c =>
        {
            int o = 0;
            for (int i = 0; i < r; i++)
            {
                int x = c[i] - pb[i], d = s[i];
                if ((uint)x >= (uint)d)
                {
                    switch (mode)
                    {
                        case "constant": return -1;
                        case "edge": x = Math.Clamp(x, 0, d - 1); break;
                        case "wrap": x = ((x % d) + d) % d; break;
                        case "reflect":
                            if (d == 1) { x = 0; break; }
                            int period = 2 * (d - 1);
                            x = ((x % period) + period) % period;
                            if (x >= d) x = period - x;
                            break;
                        default: throw new OperatorException($"{ctx.Where}: unknown pad mode '{mode}'");
                    }
                }
                o += x * st[i];
            }
            return o;
        }));
    }
}

/// <summary>Concatenation along an axis: one index map over the inputs laid end to end.</summary>
public sealed class ConcatOp : Operator
{
    public override string OpType => "Concat";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s)
    {
        if (s.Any(x => x is null)) return [null];
        int axis = TensorIndexing.Axis(ctx.Node.GetInt("axis", 0), s[0]!.Length, ctx);
        var r = (int[])s[0]!.Clone();
        r[axis] = s.Sum(x => x![axis]);
        return [r];
    }

    private static (int[] Shape, int[] Index) Map(OpContext ctx, Tensor[] ts)
    {
        var s0 = ts[0].Shape;
        int axis = TensorIndexing.Axis(ctx.Node.GetInt("axis", 0), s0.Length, ctx);
        foreach (var t in ts)
            if (t.Rank != s0.Length || Enumerable.Range(0, s0.Length).Any(i => i != axis && t.Shape[i] != s0[i]))
                throw new OperatorException($"{ctx.Where}: cannot concatenate {t.ShapeString} with {ts[0].ShapeString} on axis {axis}");
        var shape = (int[])s0.Clone();
        shape[axis] = ts.Sum(t => t.Shape[axis]);
        int outer = s0.Take(axis).Aggregate(1, (a, b) => a * b), inner = s0.Skip(axis + 1).Aggregate(1, (a, b) => a * b);
        var idx = new int[Tensor.ElementCount(shape)];
        int p = 0;
        for (int o = 0; o < outer; o++)
        {
            int baseOffset = 0;
            foreach (var t in ts)
            {
                int block = t.Shape[axis] * inner;
                for (int q = 0; q < block; q++) idx[p++] = baseOffset + o * block + q;
                baseOffset += t.Length;
            }
        }
        return (shape, idx);
    }

    // Bounds move with the elements; constant inputs are part of the same map.
    private static BoundRules.SparseMap BoundMap(OpContext ctx, IntervalBounds?[] inputs)
    {
        var (shape, idx) = Map(ctx, BoundRules.StandIns(inputs).Select(t => t!).ToArray());
        return BoundRules.SparseMap.Gather(shape, idx, 0);
    }
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => BoundRules.Sparse(BoundMap(ctx, inputs), inputs);
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.SparseBackward(r, BoundMap(ctx, r.Inputs));

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var ts = inputs.Select(t => t!).ToArray();
        if (ts.Any(t => t.Type != ts[0].Type)) throw new OperatorException($"{ctx.Where}: inputs of Concat differ in type");
        var (shape, idx) = Map(ctx, ts);
        return [TensorIndexing.Take(TensorIndexing.ConcatFlat(ts), idx, shape)];
    }

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var ts = inputs.Select(t => t!).ToArray();
        var (_, idx) = Map(ctx, ts);
        var flat = TensorIndexing.ScatterAdd(g[0]!, idx, [ts.Sum(t => t.Length)]);
        var r = new Tensor?[ts.Length];
        int off = 0;
        for (int k = 0; k < ts.Length; k++) { r[k] = flat.SliceBatch(off, ts[k].Length).Reshape(ts[k].Shape); off += ts[k].Length; }
        return r;
    }
}

/// <summary>Split along an axis: sizes from the split input (13+), attribute (before 13), num_outputs (18+) or equal parts.</summary>
public sealed class SplitOp : Operator
{
    public override string OpType => "Split";

    private static int[] Sizes(OpContext ctx, Tensor?[] inputs, int dim)
    {
        long[]? split = ctx.Opset >= 13 ? TensorIndexing.LongsOf(inputs, 1) : ctx.Node.GetInts("split");
        int parts = ctx.Node.Outputs.Length;
        if (split is { Length: > 0 })
        {
            if (split.Length != parts || split.Sum() != dim) throw new OperatorException($"{ctx.Where}: split [{string.Join(",", split)}] does not divide {dim} into {parts} outputs");
            return split.Select(v => (int)v).ToArray();
        }
        if (ctx.Node.Attr("num_outputs") is { } no)
        {
            // Opset 18: ceil(dim / n) per output, the last one takes the remainder.
            int n = (int)no.I, chunk = (dim + n - 1) / n;
            return Enumerable.Range(0, n).Select(i => Math.Max(0, Math.Min(chunk, dim - i * chunk))).ToArray();
        }
        if (dim % parts != 0) throw new OperatorException($"{ctx.Where}: cannot split {dim} into {parts} equal parts");
        return Enumerable.Repeat(dim / parts, parts).ToArray();
    }

    private static (int[] Shape, int[] Index)[] Maps(OpContext ctx, Tensor?[] inputs)
    {
        var s = inputs[0]!.Shape;
        int axis = TensorIndexing.Axis(ctx.Node.GetInt("axis", 0), s.Length, ctx);
        var sizes = Sizes(ctx, inputs, s[axis]);
        var st = TensorIndexing.Strides(s);
        var maps = new (int[], int[])[sizes.Length];
        int start = 0;
        for (int k = 0; k < sizes.Length; k++)
        {
            var shape = (int[])s.Clone(); shape[axis] = sizes[k];
            maps[k] = (shape, TensorIndexing.StridedIndex(shape, start * st[axis], st));
            start += sizes[k];
        }
        return maps;
    }

    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs) =>
        Maps(ctx, inputs).Select(m => TensorIndexing.Take(inputs[0]!, m.Index, m.Shape)).ToArray();

    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g)
    {
        var maps = Maps(ctx, inputs);
        Tensor? acc = null;
        for (int k = 0; k < maps.Length; k++)
        {
            if (g[k] is null) continue;
            var part = TensorIndexing.ScatterAdd(g[k]!, maps[k].Index, inputs[0]!.Shape);
            acc = acc is null ? part : Kernels.AddSameShape(acc, part);
        }
        var r = new Tensor?[inputs.Length];
        r[0] = acc;
        return r;
    }
}

/// <summary>Squeeze: axes as input (13+) or attribute; without axes, every size-1 axis.</summary>
public sealed class SqueezeOp : Operator
{
    public override string OpType => "Squeeze";
    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var s = inputs[0]!.Shape;
        var axes = (ctx.Opset >= 13 ? TensorIndexing.LongsOf(inputs, 1) : ctx.Node.GetInts("axes"))?.Select(a => TensorIndexing.Axis(a, s.Length, ctx)).ToHashSet();
        if (axes is { Count: > 0 } && axes.Any(a => s[a] != 1)) throw new OperatorException($"{ctx.Where}: cannot squeeze an axis whose size is not 1 (shape [{string.Join(",", s)}])");
        var shape = s.Where((d, i) => axes is { Count: > 0 } ? !axes.Contains(i) : d != 1).ToArray();
        return [inputs[0]!.Reshape(shape)];
    }
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => inputs[0]!.Reshape(Forward(ctx, BoundRules.StandIns(inputs))[0].Shape);
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.Passthrough(r);
    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g) => [g[0]!.Reshape(inputs[0]!.Shape), null];
}

/// <summary>Unsqueeze: axes (input from 13, attribute before) index the output's rank.</summary>
public sealed class UnsqueezeOp : Operator
{
    public override string OpType => "Unsqueeze";
    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        var s = inputs[0]!.Shape;
        var raw = (ctx.Opset >= 13 ? TensorIndexing.LongsOf(inputs, 1) : ctx.Node.GetInts("axes")) ?? throw new OperatorException($"{ctx.Where}: axes are required");
        int r = s.Length + raw.Length;
        var axes = raw.Select(a => TensorIndexing.Axis(a, r, ctx)).ToHashSet();
        if (axes.Count != raw.Length) throw new OperatorException($"{ctx.Where}: repeated axis in [{string.Join(",", raw)}]");
        var shape = new int[r];
        int k = 0;
        for (int i = 0; i < r; i++) shape[i] = axes.Contains(i) ? 1 : s[k++];
        return [inputs[0]!.Reshape(shape)];
    }
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) => inputs[0]!.Reshape(Forward(ctx, BoundRules.StandIns(inputs))[0].Shape);
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.Passthrough(r);
    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g) => [g[0]!.Reshape(inputs[0]!.Shape), null];
}

/// <summary>Dropout at inference: the identity, and an all-true mask. Training mode is refused, not approximated.</summary>
public sealed class DropoutOp : Operator
{
    public override string OpType => "Dropout";
    public override int[]?[] InferShapes(OpContext ctx, int[]?[] s) => [s[0], s[0]];
    public override Tensor[] Forward(OpContext ctx, Tensor?[] inputs)
    {
        if (inputs.Length > 2 && inputs[2] is { } tm && tm.GetDouble(0) != 0)
            throw new OperatorException($"{ctx.Where}: Dropout in training mode is random; the built-in engine runs inference only");
        var x = inputs[0]!;
        var mask = Tensor.FromLongs(x.Shape, Enumerable.Repeat(1L, x.Length).ToArray(), DType.Bool);
        return ctx.Node.Outputs.Length > 1 ? [x, mask] : [x];
    }
    public override Tensor?[] Backward(OpContext ctx, Tensor?[] inputs, Tensor[] outputs, Tensor?[] g) => [g[0], null, null];
    public override IntervalBounds? PropagateInterval(OpContext ctx, IntervalBounds?[] inputs) =>
        inputs.Length > 2 && inputs[2] is { } tm && (!tm.IsConstant || tm.Lower[0] != 0) ? null : inputs[0];
    public override LinearBackward? BackwardLinear(OpContext ctx, LinearBackwardRequest r) => BoundRules.Passthrough(r);
}
