namespace Gate.Core.Engine.Ops;

/// <summary>Output size and padding of a sliding-window operator along the spatial axes (ONNX Conv/Pool rules).</summary>
public sealed record SpatialGeometry(int[] Input, int[] Kernel, int[] Strides, int[] Dilations, int[] PadBegin, int[] PadEnd, int[] Output)
{
    public static SpatialGeometry Compute(OpContext ctx, int[] input, int[] kernel, bool ceilMode = false)
    {
        int r = input.Length;
        var node = ctx.Node;
        var strides = node.GetInts("strides")?.Select(v => (int)v).ToArray() ?? Enumerable.Repeat(1, r).ToArray();
        var dil = node.GetInts("dilations")?.Select(v => (int)v).ToArray() ?? Enumerable.Repeat(1, r).ToArray();
        if (strides.Length == 0) strides = Enumerable.Repeat(1, r).ToArray();
        if (dil.Length == 0) dil = Enumerable.Repeat(1, r).ToArray();
        if (strides.Length != r || dil.Length != r || kernel.Length != r)
            throw new OperatorException($"{ctx.Where}: strides/dilations/kernel must have {r} entries");
        if (strides.Any(s => s <= 0) || dil.Any(d => d <= 0) || kernel.Any(k => k <= 0))
            throw new OperatorException($"{ctx.Where}: strides, dilations and kernel sizes must be positive");
        var pb = new int[r]; var pe = new int[r]; var o = new int[r];
        string autoPad = node.GetString("auto_pad", "NOTSET");
        var pads = node.GetInts("pads");
        for (int i = 0; i < r; i++)
        {
            int eff = (kernel[i] - 1) * dil[i] + 1;
            switch (autoPad)
            {
                case "SAME_UPPER" or "SAME_LOWER":
                {
                    int outSize = (input[i] + strides[i] - 1) / strides[i];
                    int total = Math.Max(0, (outSize - 1) * strides[i] + eff - input[i]);
                    pb[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                    pe[i] = total - pb[i];
                    break;
                }
                case "VALID": break;
                case "NOTSET" or "":
                    if (pads is { Length: > 0 })
                    {
                        if (pads.Length != 2 * r) throw new OperatorException($"{ctx.Where}: pads must have {2 * r} entries");
                        pb[i] = (int)pads[i]; pe[i] = (int)pads[i + r];
                    }
                    break;
                default: throw new OperatorException($"{ctx.Where}: unknown auto_pad '{autoPad}'");
            }
            int span = input[i] + pb[i] + pe[i] - eff;
            if (span < 0) throw new OperatorException($"{ctx.Where}: kernel {eff} is larger than padded input {input[i] + pb[i] + pe[i]} on spatial axis {i}");
            o[i] = ceilMode ? (span + strides[i] - 1) / strides[i] + 1 : span / strides[i] + 1;
            // With ceil_mode, a window that would start entirely in the end padding is dropped.
            if (ceilMode && (o[i] - 1) * strides[i] >= input[i] + pb[i]) o[i]--;
        }
        return new SpatialGeometry(input, kernel, strides, dil, pb, pe, o);
    }
}
