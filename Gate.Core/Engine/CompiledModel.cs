using Gate.Core.Platform;
using Gate.Core.Model;
using Gate.Core.Tensors;

namespace Gate.Core.Engine;

/// <summary>
/// The values a forward pass returns: requested outputs and captured intermediates, plus a tape for gradients.
/// Disposing a recorded pass hands its tape's buffers back to the engine for later passes (the returned
/// <see cref="Values"/> stay valid); without it they are simply garbage-collected.
/// </summary>
public sealed class ForwardPass : IDisposable
{
    public required IReadOnlyDictionary<string, Tensor> Values { get; init; }
    internal Tensor?[][]? TapeInputs { get; init; }
    internal Tensor[][]? TapeOutputs { get; init; }
    internal PassBuffers? TapeBuffers { get; init; }
    internal bool Disposed { get; private set; }
    /// <summary>Another engine's tape (the TorchSharp autograd graph): released with the pass.</summary>
    public IDisposable? EngineTape { get; init; }
    public Tensor this[string name] => Values.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"tensor '{name}' was not requested from this forward pass");

    public void Dispose()
    {
        if (Disposed) return;
        Disposed = true;
        TapeBuffers?.ReleaseAll(Values.Values);
        EngineTape?.Dispose();
    }
}

/// <summary>
/// A model bound to the built-in engine's kernels. Thread-safe: compile once, run from many threads.
/// </summary>
public sealed class CompiledModel : IWhiteBoxEngine
{
    public string Name => "builtin";
    private readonly Operator[] _ops;
    private readonly OpContext[] _ctx;
    private readonly Dictionary<string, int> _lastUse = new();
    private readonly HashSet<string> _produced = new();
    private readonly BufferPool _pool = new();

    public OnnxModel Model { get; }

    /// <summary>
    /// Whether passes flush subnormals to zero (inputs read as zero, results flushed; FTZ+DAZ on x86-64) on every
    /// thread that computes them: the calling thread for the duration of <see cref="Forward"/> / <see cref="Backward"/>
    /// and the fork-join helpers for their chunks (<see cref="ForkJoin"/>), each restored afterwards. On by default, as
    /// ONNX Runtime and libtorch run for the checks: subnormal operands cost these CPUs 5–20× per instruction.
    /// Off (IEEE subnormals, set explicitly so a leaked mode cannot change results) where a run must show what the
    /// model computes exactly (gate run). Always false where the mode cannot be set (<see cref="FloatingPointEnvironment.CanFlushDenormals"/>).
    /// </summary>
    public bool FlushDenormals { get; }
    public Graph Graph => Model.Graph;
    public IReadOnlyList<string> InputNames { get; }
    public IReadOnlyList<string> OutputNames { get; }

    private CompiledModel(OnnxModel model, Operator[] ops, bool flushDenormals)
    {
        Model = model;
        FlushDenormals = flushDenormals && FloatingPointEnvironment.CanFlushDenormals;
        _ops = ops;
        _ctx = model.Graph.Nodes.Select(n => new OpContext(n, model.Opsets.TryGetValue(n.Domain, out var v) ? v : model.DefaultOpset)).ToArray();
        InputNames = model.Graph.Inputs.Select(i => i.Name).ToList();
        OutputNames = model.Graph.Outputs.Select(o => o.Name).ToList();
        for (int i = 0; i < model.Graph.Nodes.Count; i++)
        {
            foreach (var inp in model.Graph.Nodes[i].Inputs) if (inp.Length > 0) _lastUse[inp] = i;
            foreach (var o in model.Graph.Nodes[i].Outputs) if (o.Length > 0) _produced.Add(o);
        }
    }

    /// <summary>Binds every node to a kernel; lists all unsupported operators at once.</summary>
    public static CompiledModel Compile(OnnxModel model, bool flushDenormals = true)
    {
        var ops = new Operator[model.Graph.Nodes.Count];
        var missing = new SortedSet<string>();
        var unsupported = new List<string>();
        for (int i = 0; i < ops.Length; i++)
        {
            var n = model.Graph.Nodes[i];
            var op = OperatorRegistry.Find(n.Domain, n.OpType);
            if (op is null) missing.Add(string.IsNullOrEmpty(n.Domain) ? n.OpType : $"{n.Domain}:{n.OpType}");
            else if (op.Unsupported(n) is { } why) unsupported.Add($"{n.DisplayName}: {why}");
            else ops[i] = op;
        }
        foreach (var vi in model.Graph.Inputs.Concat(model.Graph.Outputs))
            if (vi.Kind != "tensor")
                throw new GateInputException($"{model.SourcePath}: graph value '{vi.Name}' is a {vi.Kind}; the built-in engine computes on tensors only");
        if (missing.Count > 0)
            throw new GateInputException($"{model.SourcePath}: the built-in engine does not implement operator(s) {string.Join(", ", missing.Select(OperatorRegistry.WithReason))}");
        if (unsupported.Count > 0)
            throw new GateInputException($"{model.SourcePath}: the built-in engine cannot run {string.Join("; ", unsupported)}");
        return new CompiledModel(model, ops, flushDenormals);
    }

    /// <summary>Every tensor name that can be captured (graph inputs, initializers and node outputs).</summary>
    public IEnumerable<string> TensorNames => InputNames.Concat(Graph.Initializers.Keys).Concat(_produced);

    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IEnumerable<string>? outputs = null) =>
        Forward(inputs, outputs).Values;

    /// <summary>Single-input convenience: runs the model's only input and returns its first output.</summary>
    public Tensor Run(Tensor input) =>
        Forward(new Dictionary<string, Tensor> { [InputNames.Single()] = input }, [OutputNames[0]]).Values[OutputNames[0]];

    /// <summary>
    /// Runs the graph. Only <paramref name="outputs"/> (default: graph outputs) and <paramref name="capture"/> are
    /// returned; other intermediates are dropped after their last use unless <paramref name="recordForBackward"/>.
    /// </summary>
    public ForwardPass Forward(IReadOnlyDictionary<string, Tensor> inputs, IEnumerable<string>? outputs = null,
        IEnumerable<string>? capture = null, bool recordForBackward = false)
    {
        var saved = default(FloatingPointEnvironment.Saved);
        FloatingPointEnvironment.Enter(ref saved, FlushDenormals);
        try { return ForwardInMode(inputs, outputs, capture, recordForBackward); }
        finally { FloatingPointEnvironment.Leave(ref saved); }
    }

    private ForwardPass ForwardInMode(IReadOnlyDictionary<string, Tensor> inputs, IEnumerable<string>? outputs, IEnumerable<string>? capture, bool recordForBackward)
    {
        var wanted = new HashSet<string>(outputs ?? OutputNames);
        if (capture is not null) wanted.UnionWith(capture);
        foreach (var w in wanted)
            if (!_produced.Contains(w) && !Graph.Initializers.ContainsKey(w) && !InputNames.Contains(w))
                throw new GateInputException($"{Model.FileName}: no tensor named '{w}' in the graph");

        var values = new Dictionary<string, Tensor>(Graph.Initializers);
        foreach (var vi in Graph.Inputs)
        {
            if (!inputs.TryGetValue(vi.Name, out var t))
            {
                throw new GateInputException($"{Model.FileName}: missing input '{vi.Name}' (expected {vi.ElementType.OnnxName()}{vi.ShapeString})");
            }
            CheckInput(vi, t);
            values[vi.Name] = t;
        }
        foreach (var k in inputs.Keys)
            if (!InputNames.Contains(k) && !Graph.Initializers.ContainsKey(k))
                throw new GateInputException($"{Model.FileName}: the model has no input named '{k}' (inputs: {string.Join(", ", InputNames)})");
            else if (Graph.Initializers.ContainsKey(k)) values[k] = inputs[k]; // overriding an initializer (e.g. for weight gradients)

        var nodes = Graph.Nodes;
        var tapeIn = recordForBackward ? new Tensor?[nodes.Count][] : null;
        var tapeOut = recordForBackward ? new Tensor[nodes.Count][] : null;
        // A recorded pass keeps every intermediate on its tape until the pass is disposed.
        var buffers = new PassBuffers(_pool);
        for (int i = 0; i < nodes.Count; i++)
        {
            var node = nodes[i];
            var args = new Tensor?[node.Inputs.Length];
            for (int j = 0; j < args.Length; j++)
            {
                var name = node.Inputs[j];
                if (name.Length == 0) continue;
                if (!values.TryGetValue(name, out var v)) throw new InvalidOperationException($"{node.DisplayName}: input '{name}' is not available (engine bug)");
                args[j] = v;
            }
            long started = EngineProfile.On ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
            Tensor[] res = _ops[i].Forward(_ctx[i] with { Buffers = buffers }, args);
            if (EngineProfile.On) EngineProfile.Add("fwd", node.OpType, args.Length > 0 ? args[0] : null, started);
            for (int j = 0; j < node.Outputs.Length && j < res.Length; j++)
                if (node.Outputs[j].Length > 0) values[node.Outputs[j]] = res[j];
            if (tapeIn is not null) { tapeIn[i] = args; tapeOut![i] = res; }
            else
            {
                foreach (var name in node.Inputs)
                    if (name.Length > 0 && _lastUse.TryGetValue(name, out var last) && last == i && !wanted.Contains(name) && !Graph.Initializers.ContainsKey(name)
                        && values.Remove(name, out var dead))
                        buffers.Release(dead.Floats, values.Values);
            }
        }
        var result = new Dictionary<string, Tensor>();
        foreach (var w in wanted) result[w] = values[w];
        return new ForwardPass { Values = result, TapeInputs = tapeIn, TapeOutputs = tapeOut, TapeBuffers = tapeIn is null ? null : buffers };
    }

    private void CheckInput(ValueInfo vi, Tensor t)
    {
        if (vi.ElementType != DType.Undefined && vi.ElementType != t.Type)
            throw new GateInputException($"{Model.FileName}: input '{vi.Name}' must be {vi.ElementType.OnnxName()}, got {t.Type.OnnxName()}");
        if (vi.Shape is null) return;
        if (vi.Shape.Length != t.Rank)
            throw new GateInputException($"{Model.FileName}: input '{vi.Name}' must have shape {vi.ShapeString}, got {t.ShapeString}");
        for (int i = 0; i < t.Rank; i++)
            if (vi.Shape[i].Value is long d && d != t.Shape[i])
                throw new GateInputException($"{Model.FileName}: input '{vi.Name}' must have shape {vi.ShapeString}, got {t.ShapeString} (axis {i})");
    }

    /// <summary>
    /// Reverse-mode gradient. <paramref name="outputGrads"/> seeds d(scalar)/d(output) for any produced tensors;
    /// returns d(scalar)/d(name) for each name in <paramref name="wrt"/> (graph inputs or initializers).
    /// Batched naturally: a seed of shape [N,K] yields per-sample input gradients.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> Backward(ForwardPass pass, IReadOnlyDictionary<string, Tensor> outputGrads, IEnumerable<string> wrt)
    {
        var saved = default(FloatingPointEnvironment.Saved);
        FloatingPointEnvironment.Enter(ref saved, FlushDenormals);
        try { return BackwardInMode(pass, outputGrads, wrt); }
        finally { FloatingPointEnvironment.Leave(ref saved); }
    }

    private IReadOnlyDictionary<string, Tensor> BackwardInMode(ForwardPass pass, IReadOnlyDictionary<string, Tensor> outputGrads, IEnumerable<string> wrt)
    {
        if (pass.TapeInputs is null || pass.TapeOutputs is null)
            throw new InvalidOperationException("Forward was not run with recordForBackward: true");
        if (pass.Disposed) throw new ObjectDisposedException(nameof(ForwardPass), "the forward pass was disposed: its tape is gone");
        var grads = new Dictionary<string, Tensor>(outputGrads);
        // Gradient kernels rent their results like forward kernels do; a gradient goes back as soon as the node that
        // consumed it is done, unless it is a requested result or shared with a live one (pass-through operators).
        var buffers = new PassBuffers(_pool);
        var wrtSet = wrt.ToList();
        var nodes = Graph.Nodes;
        // Tensors that depend on a requested one: only they need gradients, so other branches are skipped.
        var dependent = new HashSet<string>(wrtSet);
        var needed = new bool[nodes.Count][];
        for (int i = 0; i < nodes.Count; i++)
        {
            needed[i] = nodes[i].Inputs.Select(dependent.Contains).ToArray();
            if (needed[i].Any(b => b)) foreach (var o in nodes[i].Outputs) if (o.Length > 0) dependent.Add(o);
        }
        for (int i = nodes.Count - 1; i >= 0; i--)
        {
            var node = nodes[i];
            var outGrads = new Tensor?[node.Outputs.Length];
            bool any = false;
            for (int j = 0; j < outGrads.Length; j++)
                if (node.Outputs[j].Length > 0 && grads.TryGetValue(node.Outputs[j], out var g)) { outGrads[j] = g; any = true; }
            if (!any) continue;
            if (!_ops[i].IsDifferentiable) continue; // piecewise-constant: contributes zero gradient
            if (!needed[i].Any(b => b)) continue;   // no requested tensor upstream of this node
            long started = EngineProfile.On ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
            var inGrads = _ops[i].Backward(_ctx[i] with { GradientsNeeded = needed[i], Buffers = buffers }, pass.TapeInputs[i], pass.TapeOutputs[i], outGrads);
            if (EngineProfile.On) EngineProfile.Add("bwd", node.OpType, pass.TapeInputs[i].Length > 0 ? pass.TapeInputs[i][0] : null, started);
            for (int j = 0; j < node.Inputs.Length && j < inGrads.Length; j++)
            {
                var name = node.Inputs[j];
                var g = inGrads[j];
                if (name.Length == 0 || g is null || !needed[i][j]) continue;
                if (grads.TryGetValue(name, out var prev))
                {
                    grads[name] = Kernels.AddSameShape(prev, g);
                    buffers.Release(prev.Floats, grads.Values);
                    buffers.Release(g.Floats, grads.Values);
                }
                else grads[name] = g;
            }
            foreach (var o in node.Outputs)
                if (o.Length > 0 && !wrtSet.Contains(o) && grads.Remove(o, out var consumed))
                    buffers.Release(consumed.Floats, grads.Values);
        }
        var result = new Dictionary<string, Tensor>();
        foreach (var w in wrtSet)
        {
            if (grads.TryGetValue(w, out var g)) result[w] = g;
            else
            {
                var shape = Graph.Initializers.TryGetValue(w, out var init) ? init.Shape
                    : pass.TapeInputs.SelectMany((a, k) => a.Select((t, m) => (t, nodes[k].Inputs[m]))).FirstOrDefault(p => p.Item2 == w).t?.Shape
                    ?? throw new GateInputException($"no tensor named '{w}' to differentiate with respect to");
                result[w] = Tensor.Zeros(DType.Float32, shape);
            }
        }
        return result;
    }
}
