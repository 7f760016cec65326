using Gate.Core.Engine;
using Gate.Core.Model;
using Gate.Core.Tensors;
using TorchSharp;
using TTensor = TorchSharp.torch.Tensor;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Gate.Sandbox.Runner.Torch;

/// <summary>
/// One lowering per ONNX operator: the node's attributes and opset mapped onto TorchSharp calls with ONNX's
/// semantics (broadcasting, asymmetric pads, Reshape's 0 and -1, Softmax before opset 13...). Shape arithmetic that
/// exported graphs do with Shape/Gather/Concat runs as int64 tensors like any other value.
/// </summary>
internal static class TorchLowering
{
    private delegate TTensor[] Lower(Node n, long opset, TTensor?[] x);

    private static TTensor[] One(TTensor t) => [t];
    private static TTensor In(TTensor?[] x, int i, Node n) => i < x.Length && x[i] is { } t ? t
        : throw new OperatorException($"{n.DisplayName}: input {i} is required");

    private static readonly Dictionary<string, Lower> Table = new(StringComparer.Ordinal)
    {
        ["Add"] = (n, _, x) => One(Arith(In(x, 0, n), In(x, 1, n), (a, b) => a + b)),
        ["Sub"] = (n, _, x) => One(Arith(In(x, 0, n), In(x, 1, n), (a, b) => a - b)),
        ["Mul"] = (n, _, x) => One(Arith(In(x, 0, n), In(x, 1, n), (a, b) => a * b)),
        ["Div"] = (n, _, x) => One(Div(In(x, 0, n), In(x, 1, n))),
        ["Pow"] = (n, _, x) => One(In(x, 0, n).pow(In(x, 1, n).to_type(In(x, 0, n).dtype))),
        ["Relu"] = (n, _, x) => One(In(x, 0, n).relu()),
        ["LeakyRelu"] = (n, _, x) => One(F.leaky_relu(In(x, 0, n), n.GetFloat("alpha", 0.01f))),
        ["Sigmoid"] = (n, _, x) => One(In(x, 0, n).sigmoid()),
        ["HardSigmoid"] = (n, _, x) => One((In(x, 0, n) * n.GetFloat("alpha", 0.2f) + n.GetFloat("beta", 0.5f)).clamp(0, 1)),
        ["HardSwish"] = (n, _, x) => One(In(x, 0, n) * (In(x, 0, n) / 6 + 0.5).clamp(0, 1)),
        ["Tanh"] = (n, _, x) => One(In(x, 0, n).tanh()),
        ["Erf"] = (n, _, x) => One(In(x, 0, n).erf()),
        ["Exp"] = (n, _, x) => One(In(x, 0, n).exp()),
        ["Log"] = (n, _, x) => One(In(x, 0, n).log()),
        ["Sqrt"] = (n, _, x) => One(In(x, 0, n).sqrt()),
        ["Reciprocal"] = (n, _, x) => One(In(x, 0, n).reciprocal()),
        ["Neg"] = (n, _, x) => One(In(x, 0, n).neg()),
        ["Abs"] = (n, _, x) => One(In(x, 0, n).abs()),
        ["Softplus"] = (n, _, x) => One(F.softplus(In(x, 0, n))),
        ["Gelu"] = (n, _, x) => One(Gelu(In(x, 0, n), n.GetString("approximate", "none"))),
        ["Identity"] = (n, _, x) => One(In(x, 0, n).alias()),
        ["Dropout"] = (n, _, x) => One(In(x, 0, n).alias()), // inference: identity (the mask output is not produced)
        ["Clip"] = (n, opset, x) => One(Clip(n, opset, x)),
        ["Conv"] = (n, _, x) => One(Conv(n, In(x, 0, n), In(x, 1, n), x.Length > 2 ? x[2] : null)),
        ["MaxPool"] = (n, _, x) => One(Pool(n, In(x, 0, n), max: true)),
        ["AveragePool"] = (n, _, x) => One(Pool(n, In(x, 0, n), max: false)),
        ["GlobalAveragePool"] = (n, _, x) => One(In(x, 0, n).mean(Enumerable.Range(2, (int)In(x, 0, n).dim() - 2).Select(i => (long)i).ToArray(), keepdim: true)),
        ["GlobalMaxPool"] = (n, _, x) => One(GlobalMax(In(x, 0, n))),
        ["BatchNormalization"] = (n, _, x) => One(BatchNorm(n, x)),
        ["LayerNormalization"] = (n, _, x) => LayerNorm(n, x),
        ["Gemm"] = (n, _, x) => One(Gemm(n, x)),
        ["MatMul"] = (n, _, x) => One(In(x, 0, n).matmul(In(x, 1, n))),
        ["Flatten"] = (n, _, x) => One(Flatten(In(x, 0, n), n.GetInt("axis", 1))),
        ["Reshape"] = (n, _, x) => One(Reshape(In(x, 0, n), Ints(In(x, 1, n)), n.GetInt("allowzero", 0) != 0)),
        ["Transpose"] = (n, _, x) => One(In(x, 0, n).permute(n.GetInts("perm") ?? Enumerable.Range(0, (int)In(x, 0, n).dim()).Reverse().Select(i => (long)i).ToArray())),
        ["Concat"] = (n, _, x) => One(torch.cat(x.Where(t => t is not null).Select(t => t!).ToList(), n.GetInt("axis", 0))),
        ["Softmax"] = (n, opset, x) => One(SoftmaxLike(In(x, 0, n), n, opset, log: false)),
        ["LogSoftmax"] = (n, opset, x) => One(SoftmaxLike(In(x, 0, n), n, opset, log: true)),
        ["Gather"] = (n, _, x) => One(Gather(In(x, 0, n), In(x, 1, n), n.GetInt("axis", 0))),
        ["Where"] = (n, _, x) => One(torch.where(In(x, 0, n).to_type(ScalarType.Bool), In(x, 1, n), In(x, 2, n))),
        ["Expand"] = (n, _, x) => One(Expand(In(x, 0, n), Ints(In(x, 1, n)))),
        ["Shape"] = (n, _, x) => One(ShapeOf(n, In(x, 0, n))),
        ["Constant"] = (n, _, _) => One(Constant(n)),
        ["ConstantOfShape"] = (n, _, x) => One(ConstantOfShape(n, In(x, 0, n))),
        ["Cast"] = (n, _, x) => One(Cast(In(x, 0, n), (Gate.Core.Tensors.DType)n.GetInt("to", 1))),
        ["Unsqueeze"] = (n, opset, x) => One(Unsqueeze(In(x, 0, n), opset >= 13 ? Ints(In(x, 1, n)) : n.GetInts("axes") ?? [])),
        ["Squeeze"] = (n, opset, x) => One(Squeeze(In(x, 0, n), opset >= 13 ? (x.Length > 1 && x[1] is { } a ? Ints(a) : null) : n.GetInts("axes"))),
        ["Slice"] = (n, opset, x) => One(Slice(n, opset, x)),
        ["ReduceMean"] = (n, opset, x) => One(Reduce(n, opset, x, (t, axes, keep) => t.mean(axes, keep), 18)),
        ["ReduceSum"] = (n, opset, x) => One(Reduce(n, opset, x, (t, axes, keep) => t.sum(axes, keep), 13)),
        ["Max"] = (n, _, x) => One(x.Where(t => t is not null).Aggregate((a, b) => torch.maximum(a!, b!))!),
        ["Min"] = (n, _, x) => One(x.Where(t => t is not null).Aggregate((a, b) => torch.minimum(a!, b!))!),
        ["Sum"] = (n, _, x) => One(x.Where(t => t is not null).Aggregate((a, b) => a! + b!)!),
        ["Equal"] = (n, _, x) => One(In(x, 0, n).eq(In(x, 1, n))),
        ["Less"] = (n, _, x) => One(In(x, 0, n).lt(In(x, 1, n))),
        ["Greater"] = (n, _, x) => One(In(x, 0, n).gt(In(x, 1, n))),
        ["Not"] = (n, _, x) => One(In(x, 0, n).logical_not()),
        ["Pad"] = (n, opset, x) => One(Pad(n, opset, x)),
        ["Split"] = (n, opset, x) => Split(n, opset, x),
        ["Range"] = (n, _, x) => One(torch.arange(In(x, 0, n).item<long>(), In(x, 1, n).item<long>(), In(x, 2, n).item<long>())),
    };

    public static IEnumerable<string> Operators => Table.Keys.Order(StringComparer.Ordinal);
    public static bool Supports(string opType) => Table.ContainsKey(opType);

    public static TTensor[] Run(Node node, long opset, TTensor?[] inputs) =>
        Table.TryGetValue(node.OpType, out var lower) ? lower(node, opset, inputs)
            : throw new OperatorException($"{node.DisplayName}: the torch engine does not lower {node.OpType}");

    // Shape data is read on the host (from a GPU tensor that is one small copy).
    private static long[] Ints(TTensor t) => t.to_type(ScalarType.Int64).cpu().contiguous().data<long>().ToArray();

    /// <summary>ONNX arithmetic keeps the operands' type; mixed float/int only arises from shape arithmetic.</summary>
    private static TTensor Arith(TTensor a, TTensor b, Func<TTensor, TTensor, TTensor> op) =>
        a.dtype == b.dtype ? op(a, b) : op(a, b.to_type(a.dtype));

    /// <summary>Integer Div truncates in ONNX (C semantics); floating Div is true division. The instance method
    /// Tensor.div takes the rounding mode; TorchSharp 0.107's static torch.div(a, b, mode) drops it and returns the
    /// float quotient, which made the exporter's chunk bounds ((96 + 2) / 3 × 2 = 65.3, not 64) slice a fused QKV wrong.</summary>
    private static TTensor Div(TTensor a, TTensor b) =>
        a.is_floating_point() ? Arith(a, b, (p, q) => p / q) : a.div(b.to_type(a.dtype), RoundingMode.trunc);

    private static TTensor Gelu(TTensor x, string approximate) => approximate == "tanh"
        ? 0.5 * x * (1 + (Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x.pow(3))).tanh())
        : 0.5 * x * (1 + (x / Math.Sqrt(2)).erf());

    private static TTensor Clip(Node n, long opset, TTensor?[] x)
    {
        var v = In(x, 0, n);
        if (opset < 11) return v.clamp(n.GetFloat("min", float.NegativeInfinity), n.GetFloat("max", float.PositiveInfinity));
        if (x.Length > 1 && x[1] is { } lo) v = torch.maximum(v, lo.to_type(v.dtype));
        if (x.Length > 2 && x[2] is { } hi) v = torch.minimum(v, hi.to_type(v.dtype));
        return v;
    }

    /// <summary>ONNX pads [b1..bk, e1..ek] (or auto_pad) for the spatial axes of input x and kernel k.</summary>
    private static long[] Pads(Node n, TTensor x, long[] kernel, long[] strides, long[] dilations)
    {
        int k = kernel.Length;
        var autoPad = n.GetString("auto_pad", "NOTSET");
        if (autoPad is "SAME_UPPER" or "SAME_LOWER")
        {
            var pads = new long[2 * k];
            for (int i = 0; i < k; i++)
            {
                long inSize = x.shape[2 + i], outSize = (inSize + strides[i] - 1) / strides[i];
                long total = Math.Max(0, (outSize - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - inSize);
                long small = total / 2, big = total - small;
                (pads[i], pads[i + k]) = autoPad == "SAME_UPPER" ? (small, big) : (big, small);
            }
            return pads;
        }
        if (autoPad is "VALID") return new long[2 * k];
        return n.GetInts("pads") ?? new long[2 * k];
    }

    /// <summary>Symmetric pads go to the kernel; asymmetric ones are applied first with F.pad (value as given).</summary>
    private static (TTensor X, long[] Symmetric) ApplyPads(TTensor x, long[] pads, double value, bool explicitly = false)
    {
        int k = pads.Length / 2;
        bool symmetric = Enumerable.Range(0, k).All(i => pads[i] == pads[i + k]);
        if (symmetric && !explicitly) return (x, pads[..k]);
        // F.pad takes (last axis begin, last axis end, previous axis begin, ...).
        var torchPads = new long[2 * k];
        for (int i = 0; i < k; i++) { torchPads[2 * i] = pads[k - 1 - i]; torchPads[2 * i + 1] = pads[2 * k - 1 - i]; }
        return (F.pad(x, torchPads, PaddingModes.Constant, value), new long[k]);
    }

    private static TTensor Conv(Node n, TTensor x, TTensor w, TTensor? b)
    {
        int k = (int)w.dim() - 2;
        var kernel = n.GetInts("kernel_shape") ?? w.shape[2..];
        var strides = n.GetInts("strides") ?? Enumerable.Repeat(1L, k).ToArray();
        var dilations = n.GetInts("dilations") ?? Enumerable.Repeat(1L, k).ToArray();
        var (px, pads) = ApplyPads(x, Pads(n, x, kernel, strides, dilations), 0);
        long groups = n.GetInt("group", 1);
        if (k == 2 && ChannelsLast.Enabled && IsChannelsLast(w)) px = ChannelsLast.Of(px);
        return k switch
        {
            1 => F.conv1d(px, w, b, strides[0], pads[0], dilations[0], groups),
            2 => F.conv2d(px, w, b, strides, pads, dilations, groups),
            3 => F.conv3d(px, w, b, strides, pads, dilations, groups),
            _ => throw new OperatorException($"{n.DisplayName}: the torch engine lowers 1-3 spatial axes, not {k}"),
        };
    }

    private static bool IsChannelsLast(TTensor w) => w.dim() == 4 && w.stride(1) == 1 && w.shape[1] > 1;

    private static TTensor Pool(Node n, TTensor x, bool max)
    {
        var kernel = n.GetInts("kernel_shape") ?? throw new OperatorException($"{n.DisplayName}: kernel_shape is required");
        int k = kernel.Length;
        var strides = n.GetInts("strides") ?? Enumerable.Repeat(1L, k).ToArray();
        var dilations = n.GetInts("dilations") ?? Enumerable.Repeat(1L, k).ToArray();
        bool ceil = n.GetInt("ceil_mode", 0) != 0;
        var allPads = Pads(n, x, kernel, strides, dilations);
        bool includePad = n.GetInt("count_include_pad", 0) != 0;
        bool symmetric = Enumerable.Range(0, k).All(i => allPads[i] == allPads[i + k]);
        // Torch limits symmetric pads to half the kernel; beyond that, or asymmetric, the pad is applied explicitly:
        // -inf for MaxPool; for AveragePool only when padding counts (count_include_pad), otherwise refused.
        bool fitsKernel = Enumerable.Range(0, k).All(i => allPads[i] <= kernel[i] / 2);
        if (!symmetric || !fitsKernel)
        {
            if (!max && !includePad) throw new OperatorException($"{n.DisplayName}: the torch engine does not lower AveragePool with asymmetric pads that do not count (count_include_pad=0)");
            (x, _) = ApplyPads(x, allPads, max ? double.NegativeInfinity : 0, explicitly: true);
            allPads = new long[2 * k];
        }
        var pads = allPads[..k];
        if (max)
            return k switch
            {
                1 => F.max_pool1d(x, kernel[0], strides[0], pads[0], dilations[0], ceil),
                2 => F.max_pool2d(x, kernel, strides, pads, dilations, ceil),
                3 => F.max_pool3d(x, kernel, strides, pads, dilations, ceil),
                _ => throw new OperatorException($"{n.DisplayName}: the torch engine lowers 1-3 spatial axes, not {k}"),
            };
        if (dilations.Any(d => d != 1)) throw new OperatorException($"{n.DisplayName}: the torch engine does not lower dilated AveragePool");
        return k switch
        {
            1 => F.avg_pool1d(x, kernel[0], strides[0], pads[0], ceil, includePad),
            2 => F.avg_pool2d(x, kernel, strides, pads, ceil, includePad),
            3 => F.avg_pool3d(x, kernel, strides, pads, ceil, includePad),
            _ => throw new OperatorException($"{n.DisplayName}: the torch engine lowers 1-3 spatial axes, not {k}"),
        };
    }

    private static TTensor GlobalMax(TTensor x)
    {
        var v = x;
        for (int axis = (int)x.dim() - 1; axis >= 2; axis--) v = v.amax([axis], keepdim: true);
        return v;
    }

    private static TTensor ChannelShape(TTensor t, long rank) =>
        t.reshape(new long[] { 1, -1 }.Concat(Enumerable.Repeat(1L, (int)rank - 2)).ToArray());

    private static TTensor BatchNorm(Node n, TTensor?[] x)
    {
        var v = In(x, 0, n);
        long rank = v.dim();
        var scale = ChannelShape(In(x, 1, n), rank);
        var bias = ChannelShape(In(x, 2, n), rank);
        var mean = ChannelShape(In(x, 3, n), rank);
        var variance = ChannelShape(In(x, 4, n), rank);
        float eps = n.GetFloat("epsilon", 1e-5f);
        return (v - mean) / (variance + eps).sqrt() * scale + bias;
    }

    private static TTensor[] LayerNorm(Node n, TTensor?[] x)
    {
        var v = In(x, 0, n);
        long rank = v.dim();
        long axis = n.GetInt("axis", -1);
        if (axis < 0) axis += rank;
        var dims = Enumerable.Range((int)axis, (int)(rank - axis)).Select(i => (long)i).ToArray();
        float eps = n.GetFloat("epsilon", 1e-5f);
        var mean = v.mean(dims, keepdim: true);
        var centred = v - mean;
        var invStd = ((centred * centred).mean(dims, keepdim: true) + eps).rsqrt();
        var y = centred * invStd * In(x, 1, n);
        if (x.Length > 2 && x[2] is { } b) y += b;
        return [y, mean, invStd];
    }

    private static TTensor Gemm(Node n, TTensor?[] x)
    {
        var a = In(x, 0, n);
        var b = In(x, 1, n);
        if (n.GetInt("transA", 0) != 0) a = a.t();
        if (n.GetInt("transB", 0) != 0) b = b.t();
        var y = a.matmul(b);
        float alpha = n.GetFloat("alpha", 1f), beta = n.GetFloat("beta", 1f);
        if (alpha != 1f) y *= alpha;
        if (x.Length > 2 && x[2] is { } c) y += beta == 1f ? c : c * beta;
        return y;
    }

    private static TTensor Flatten(TTensor x, long axis)
    {
        if (axis < 0) axis += x.dim();
        long outer = 1, inner = 1;
        for (int i = 0; i < x.dim(); i++) { if (i < axis) outer *= x.shape[i]; else inner *= x.shape[i]; }
        return x.reshape(outer, inner);
    }

    private static TTensor Reshape(TTensor x, long[] shape, bool allowZero)
    {
        var target = (long[])shape.Clone();
        if (!allowZero)
            for (int i = 0; i < target.Length; i++) if (target[i] == 0) target[i] = x.shape[i];
        return x.reshape(target);
    }

    private static TTensor SoftmaxLike(TTensor x, Node n, long opset, bool log)
    {
        long rank = x.dim();
        if (opset >= 13)
        {
            long axis = n.GetInt("axis", -1);
            return log ? x.log_softmax(axis) : x.softmax(axis);
        }
        // Before opset 13: the input is viewed as 2-D [prod(:axis), prod(axis:)] and normalised along the second axis.
        long a = n.GetInt("axis", 1);
        if (a < 0) a += rank;
        var flat = Flatten(x, a);
        return (log ? flat.log_softmax(1) : flat.softmax(1)).reshape(x.shape);
    }

    private static TTensor Gather(TTensor data, TTensor indices, long axis)
    {
        if (axis < 0) axis += data.dim();
        var idx = indices.to_type(ScalarType.Int64);
        idx = torch.where(idx < 0, idx + data.shape[axis], idx);
        var picked = data.index_select(axis, idx.flatten());
        var shape = data.shape[..(int)axis].Concat(indices.shape).Concat(data.shape[((int)axis + 1)..]).ToArray();
        return picked.reshape(shape);
    }

    /// <summary>ONNX Expand broadcasts both ways: the result has the broadcast of the input's shape and the given one.</summary>
    private static TTensor Expand(TTensor x, long[] shape)
    {
        int rank = Math.Max((int)x.dim(), shape.Length);
        var target = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            long a = i - (rank - x.dim()) >= 0 ? x.shape[i - (rank - x.dim())] : 1;
            long b = i - (rank - shape.Length) >= 0 ? shape[i - (rank - shape.Length)] : 1;
            target[i] = a == 1 ? b : a;
        }
        return x.expand(target);
    }

    private static TTensor ShapeOf(Node n, TTensor x)
    {
        long rank = x.dim();
        long start = n.GetInt("start", 0), end = n.GetInt("end", rank);
        if (start < 0) start += rank;
        if (end < 0) end += rank;
        start = Math.Clamp(start, 0, rank); end = Math.Clamp(end, start, rank);
        return torch.tensor(x.shape[(int)start..(int)end]);
    }

    private static TTensor Constant(Node n)
    {
        if (n.Attr("value") is { T: { } t }) return TorchEngine.ToTorch(t);
        if (n.Attr("value_float") is { } f) return torch.tensor(f.F);
        if (n.Attr("value_floats") is { } fs) return torch.tensor(fs.Floats);
        if (n.Attr("value_int") is { } i) return torch.tensor(i.I);
        if (n.Attr("value_ints") is { } iss) return torch.tensor(iss.Ints);
        throw new OperatorException($"{n.DisplayName}: the torch engine lowers Constant with value, value_float(s) or value_int(s) only");
    }

    private static TTensor ConstantOfShape(Node n, TTensor shape)
    {
        var dims = Ints(shape);
        if (n.Attr("value") is { T: { } t }) return TorchEngine.ToTorch(t).reshape(-1)[0].expand(dims).clone();
        return torch.zeros(dims);
    }

    private static TTensor Cast(TTensor x, Gate.Core.Tensors.DType to) => to switch
    {
        Gate.Core.Tensors.DType.Float32 or Gate.Core.Tensors.DType.Float16 or Gate.Core.Tensors.DType.BFloat16 => x.to_type(ScalarType.Float32),
        Gate.Core.Tensors.DType.Float64 => x.to_type(ScalarType.Float64),
        Gate.Core.Tensors.DType.Bool => x.to_type(ScalarType.Bool),
        _ when to.IsInteger() => x.is_floating_point() ? x.trunc().to_type(ScalarType.Int64) : x.to_type(ScalarType.Int64),
        _ => throw new OperatorException($"Cast to {to.OnnxName()} is not lowered by the torch engine"),
    };

    private static TTensor Unsqueeze(TTensor x, long[] axes)
    {
        long rank = x.dim() + axes.Length;
        foreach (var a in axes.Select(a => a < 0 ? a + rank : a).Order()) x = x.unsqueeze(a);
        return x;
    }

    private static TTensor Squeeze(TTensor x, long[]? axes)
    {
        if (axes is null || axes.Length == 0)
            return x.reshape(x.shape.Where(d => d != 1).ToArray());
        long rank = x.dim();
        foreach (var a in axes.Select(a => a < 0 ? a + rank : a).OrderDescending()) x = x.squeeze(a);
        return x;
    }

    private static TTensor Slice(Node n, long opset, TTensor?[] x)
    {
        var v = In(x, 0, n);
        long[] starts, ends, axes, steps;
        if (opset < 10)
        {
            starts = n.GetInts("starts") ?? []; ends = n.GetInts("ends") ?? [];
            axes = n.GetInts("axes") ?? Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
            steps = Enumerable.Repeat(1L, starts.Length).ToArray();
        }
        else
        {
            starts = Ints(In(x, 1, n)); ends = Ints(In(x, 2, n));
            axes = x.Length > 3 && x[3] is { } ax ? Ints(ax) : Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
            steps = x.Length > 4 && x[4] is { } st ? Ints(st) : Enumerable.Repeat(1L, starts.Length).ToArray();
        }
        for (int i = 0; i < starts.Length; i++)
        {
            long axis = axes[i] < 0 ? axes[i] + v.dim() : axes[i];
            long dim = v.shape[axis], step = steps[i];
            long s = starts[i], e = ends[i];
            if (step > 0)
            {
                s = Math.Clamp(s < 0 ? s + dim : s, 0, dim);
                e = Math.Clamp(e < 0 ? e + dim : e, 0, dim);
                v = v.slice(axis, s, Math.Max(s, e), step);
            }
            else
            {
                // Negative steps: flip, then slice forward (torch's slice takes positive steps only).
                s = Math.Clamp(s < 0 ? s + dim : s, -1, dim - 1);
                e = Math.Clamp(e < 0 ? e + dim : e, -1, dim - 1);
                var flipped = v.flip(axis);
                long fs = dim - 1 - s, fe = dim - 1 - e;
                v = flipped.slice(axis, fs, Math.Max(fs, fe), -step);
            }
        }
        return v;
    }

    private static TTensor Reduce(Node n, long opset, TTensor?[] x, Func<TTensor, long[], bool, TTensor> op, long axesAsInputFrom)
    {
        var v = In(x, 0, n);
        bool keep = n.GetInt("keepdims", 1) != 0;
        long[]? axes = opset >= axesAsInputFrom ? (x.Length > 1 && x[1] is { } a ? Ints(a) : null) : n.GetInts("axes");
        if (axes is null || axes.Length == 0)
        {
            if (n.GetInt("noop_with_empty_axes", 0) != 0) return v.alias();
            axes = Enumerable.Range(0, (int)v.dim()).Select(i => (long)i).ToArray();
        }
        return op(v, axes, keep);
    }

    private static TTensor Pad(Node n, long opset, TTensor?[] x)
    {
        var v = In(x, 0, n);
        var mode = n.GetString("mode", "constant");
        if (mode != "constant") throw new OperatorException($"{n.DisplayName}: the torch engine lowers constant Pad only, not {mode}");
        long[] pads = opset >= 11 ? Ints(In(x, 1, n)) : n.GetInts("pads") ?? [];
        double value = opset >= 11 ? (x.Length > 2 && x[2] is { } c ? c.to_type(ScalarType.Float64).item<double>() : 0) : n.GetFloat("value", 0);
        int rank = (int)v.dim();
        long[] axes = opset >= 18 && x.Length > 3 && x[3] is { } ax ? Ints(ax).Select(a => a < 0 ? a + rank : a).ToArray() : Enumerable.Range(0, rank).Select(i => (long)i).ToArray();
        var full = new long[2 * rank];
        for (int i = 0; i < axes.Length; i++) { full[axes[i]] = pads[i]; full[axes[i] + rank] = pads[i + axes.Length]; }
        var torchPads = new long[2 * rank];
        for (int i = 0; i < rank; i++) { torchPads[2 * i] = full[rank - 1 - i]; torchPads[2 * i + 1] = full[2 * rank - 1 - i]; }
        return F.pad(v, torchPads, PaddingModes.Constant, value);
    }

    private static TTensor[] Split(Node n, long opset, TTensor?[] x)
    {
        var v = In(x, 0, n);
        long axis = n.GetInt("axis", 0);
        if (axis < 0) axis += v.dim();
        long[]? sizes = opset >= 13 ? (x.Length > 1 && x[1] is { } s ? Ints(s) : null) : n.GetInts("split");
        if (sizes is null || sizes.Length == 0)
        {
            long parts = n.GetInt("num_outputs", n.Outputs.Length), dim = v.shape[axis], each = (dim + parts - 1) / parts;
            sizes = Enumerable.Range(0, (int)parts).Select(i => Math.Min(each, dim - i * each)).ToArray();
        }
        return v.split(sizes, axis);
    }
}

/// <summary>
/// NHWC ("channels last") storage for 2-D convolutions where oneDNN runs them: oneDNN's native layout for those
/// kernels, so ATen hands tensors over without reordering each activation (and its gradient) to a blocked layout and
/// back at every convolution. TorchSharp has no memory-format argument, so the layout is made by strides: a
/// permute to NHWC, contiguous, and a permute back keeps the NCHW shape with NHWC strides, which ATen's
/// suggest_memory_format reads. Elementwise operators keep the layout; gradients flow back through the copy.
/// </summary>
internal static class ChannelsLast
{
    /// <summary>On unless GATE_TORCH_CHANNELS_LAST=0 (a benchmark A/B switch; scripts/bench-torch.sh passes it through).</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("GATE_TORCH_CHANNELS_LAST") != "0";

    public static TTensor Of(TTensor x) =>
        x.dim() == 4 && !(x.stride(1) == 1 && x.shape[1] > 1) ? x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) : x;
}
