using System.Diagnostics;
using System.Globalization;
using System.Text;
using Gate.Core.Engine;
using Gate.Core.Engine.Bounds;
using Gate.Core.Model;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Core.Verification;

/// <summary>The VNN-COMP answers: sat = a confirmed counterexample; unsat = proved; unknown; timeout.</summary>
public enum ProofStatus { Sat, Unsat, Unknown, Timeout }

public enum ProofMethod { Ibp, Crown, Bab }

public sealed record ProverOptions
{
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);
    public ProofMethod Method { get; init; } = ProofMethod.Bab;
    public int Workers { get; init; } = Math.Clamp(Environment.ProcessorCount, 1, 2);
    public ulong Seed { get; init; } = 1;
    public int AttackRestarts { get; init; } = 8;
    public int AttackSteps { get; init; } = 40;
    public int AlphaSteps { get; init; } = 4;
    /// <summary>Inputs of at most this many elements are split by input; larger ones by ReLU.</summary>
    public int InputSplitMaxDims { get; init; } = 10;
    /// <summary>Sub-boxes bounded together in one batched pass by input-split branch and bound.</summary>
    public int InputSplitBatch { get; init; } = 64;
    /// <summary>Inputs tried per split by input-split branch and bound: 1 bisects the most sensitive input (width ×
    /// |coefficient| in the tightest row); k &gt; 1 bounds the children of the k most sensitive and keeps the split
    /// whose worse child is tighter (children it already proves are dropped).</summary>
    public int InputSplitLookahead { get; init; } = 1;
    /// <summary>Input-split branch and bound runs two searches side by side, half the workers each: with α-CROWN bounds
    /// and with plain CROWN bounds; the first sat or unsat (both sound) ends both. false: α only.</summary>
    public bool InputSplitPortfolio { get; init; } = true;
    /// <summary>Random restarts of the float64 descent attack before input-split branch and bound.</summary>
    public int ChainAttackRestarts { get; init; } = 200;
    /// <summary>Descent steps from each open sub-domain's most promising vertex and centre.</summary>
    public int SubdomainAttackSteps { get; init; } = 6;
    /// <summary>ReLU-split branch and bound on a plain dense/ReLU chain uses β-CROWN (<see cref="ReluChain.BoundSplit"/>);
    /// false: the general bound propagator's ReLU splitting.</summary>
    public bool ChainReluSplit { get; init; } = true;
    /// <summary>α/β steps at the root of ReLU-split branch and bound, and per sub-domain (warm-started).</summary>
    public int ReluSplitRootSteps { get; init; } = 20;
    public int ReluSplitSteps { get; init; } = 4;
    /// <summary>Random restarts of the float64 descent attack before ReLU-split branch and bound on a chain.</summary>
    public int ReluSplitAttackRestarts { get; init; } = 4;
    /// <summary>Open sub-domains kept at most; beyond it the search stops with "unknown" (memory bound).</summary>
    public int MaxOpenDomains { get; init; } = 2_000_000;
    /// <summary>Most of the branch-and-bound workers' time the falsifier may take attacking promising sub-boxes (0: none).</summary>
    public double FalsifyShare { get; init; } = 0.2;
    /// <summary>The falsifier's multi-start search over every case before branch and bound, as a fraction of the
    /// timeout (capped at <see cref="FalsifyUpfrontMax"/>).</summary>
    public double FalsifyUpfront { get; init; } = 0.01;
    public TimeSpan FalsifyUpfrontMax { get; init; } = TimeSpan.FromSeconds(1.5);
}

/// <summary>The outcome, with the confirmed counterexample (float32, as the production runtime saw it) for sat.</summary>
public sealed record ProofResult(ProofStatus Status, string Detail, float[]? CounterexampleX = null, float[]? CounterexampleY = null,
    string? ConfirmedOn = null, long Domains = 0, double Seconds = 0)
{
    /// <summary>The VNN-COMP result file: the status line, and for sat the assignments ((X_0 v) … (Y_0 v) …).</summary>
    public string ToVnnComp()
    {
        var sb = new StringBuilder(Status.ToString().ToLowerInvariant()).Append('\n');
        if (Status == ProofStatus.Sat && CounterexampleX is not null && CounterexampleY is not null)
        {
            string F(float v) => ((double)v).ToString("R", CultureInfo.InvariantCulture);
            var items = CounterexampleX.Select((v, i) => $"(X_{i} {F(v)})").Concat(CounterexampleY.Select((v, j) => $"(Y_{j} {F(v)})")).ToList();
            sb.Append('(').Append(string.Join("\n ", items)).Append(")\n");
        }
        return sb.ToString();
    }
}

/// <summary>
/// Decides a VNN-LIB property for a model: a quick PGD attack first (engine gradients), then bound-based branch
/// and bound (input splitting for low-dimensional inputs, ReLU splitting otherwise) on several threads. A
/// counterexample counts only once the confirming runtime (production when available) reproduces it; "unsat"
/// needs every sub-domain of every case closed by a sound bound.
/// </summary>
public sealed partial class Prover
{
    private readonly CompiledModel _engine;
    private readonly BoundNetwork _net;
    private readonly IInferenceSession _confirm;
    private readonly ProverOptions _o;
    private readonly ReluChain? _chain;
    private readonly Lock _confirmLock = new();

    public BoundNetwork Network => _net;
    public string ConfirmingRuntime => _confirm.Info.Name;

    public Prover(OnnxModel model, IInferenceSession confirm, ProverOptions? options = null)
    {
        _engine = CompiledModel.Compile(model);
        _net = new BoundNetwork(model);
        _confirm = confirm;
        _o = options ?? new ProverOptions();
        _chain = _net.Unsupported is null ? ReluChain.TryBuild(model) : null;
    }

    /// <summary>
    /// The production runtime when ONNX Runtime is bound into this build, else the built-in engine; the name of
    /// the one chosen is in the session's Info and in every result.
    /// </summary>
    public static IInferenceSession OpenConfirmingRuntime(OnnxModel model)
    {
        if (ProductionRuntime.OnnxRuntimeFactory is { } factory)
        {
            try { return factory().Load(model, new RuntimeOptions()); }
            catch (GateComponentMissingException) { }
        }
        return new BuiltinRuntime().Load(model, new RuntimeOptions());
    }

    public ProofResult Prove(VnnProperty p, CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        if (p.InputCount != _net.InputSize)
            throw new GateInputException($"{p.Source}: declares {p.InputCount} inputs X_i but the model input '{_net.InputName}' has {_net.InputSize} elements");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(_o.Timeout);
        var token = cts.Token;
        ProofResult Done(ProofStatus s, string detail, long domains, (float[] x, float[] y)? cex = null) =>
            new(s, detail, cex?.x, cex?.y, _confirm.Info.Name, domains, sw.Elapsed.TotalSeconds);

        int outputs = _net.Unsupported is null ? _net.OutputSize : p.OutputCount;
        if (p.OutputCount != outputs)
            throw new GateInputException($"{p.Source}: declares {p.OutputCount} outputs Y_j but the model output '{_net.OutputName}' has {outputs} elements");
        if (p.Cases.Count == 0) return Done(ProofStatus.Unsat, "every case of the property is empty", 0);

        // The unperturbed input first: for a local-robustness property the box centre is the sample itself, and a
        // sample the model already gets wrong is reported as such, not as a robustness violation.
        foreach (var c in p.Cases)
        {
            var centre = c.InputLower.Select((l, i) => 0.5 * (l + c.InputUpper[i])).ToArray();
            if (c.Constraints.Count > 0 && Confirm(c, ToBoxFloat(c, centre)) is { } at)
                return Done(ProofStatus.Sat, "the unperturbed input (the centre of the input box) already violates the property: the model is wrong on it without any perturbation", 0, at);
        }
        // Without bound rules no proof is possible: say so at once, after a brief attack only.
        int restarts = _net.Unsupported is null ? _o.AttackRestarts : Math.Min(2, _o.AttackRestarts);
        var rng = new Random((int)(_o.Seed ^ (_o.Seed >> 32)));
        foreach (var c in p.Cases)
        {
            if (token.IsCancellationRequested) break;
            if (Attack(c, rng, token, restarts) is { } cex) return Done(ProofStatus.Sat, "counterexample found by the attack and confirmed", 0, cex);
        }
        if (token.IsCancellationRequested) return Done(Timed(ct), "timed out during the attack", 0);
        if (_net.Unsupported is not null) return Done(ProofStatus.Unknown, $"cannot prove: bounds are not available ({_net.Unsupported}); a brief attack found no counterexample", 0);
        _falsifier = _chain is null ? null : new Falsifier(this, _chain, p.Cases, seedSalt: 3);
        if (_falsifier?.Run(TimeSpan.FromTicks(Math.Min(_o.FalsifyUpfrontMax.Ticks, (long)(_o.FalsifyUpfront * _o.Timeout.Ticks))), token) is { } fx)
            return Done(ProofStatus.Sat, "counterexample found by the multi-start falsifier and confirmed", 0, fx);

        long domains = 0;
        bool unknown = false;
        string unknownWhy = "";
        var splitRoots = new Dictionary<VnnCase, ReluChain.SplitRoot>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < p.Cases.Count; i++)
        {
            var (status, cex, n, why) = Decide(p.Cases[i], token, p.Cases, splitRoots);
            domains += n;
            switch (status)
            {
                case ProofStatus.Sat: return Done(ProofStatus.Sat, $"counterexample found in case {i + 1} by branch and bound and confirmed", domains, cex);
                case ProofStatus.Timeout: return Done(Timed(ct), $"timed out in case {i + 1} of {p.Cases.Count} after {domains} sub-domains", domains);
                case ProofStatus.Unknown: unknown = true; unknownWhy = why; break;
            }
        }
        return unknown
            ? Done(ProofStatus.Unknown, $"not decided: {unknownWhy}", domains)
            : Done(ProofStatus.Unsat, $"proved over {domains} sub-domains ({p.Cases.Count} case(s), method {_o.Method.ToString().ToLowerInvariant()})", domains);
    }

    private static ProofStatus Timed(CancellationToken outer) => outer.IsCancellationRequested ? ProofStatus.Unknown : ProofStatus.Timeout;

    private static (double[] c, double[] d) Spec(VnnCase c, int outputs)
    {
        var cm = new double[c.Constraints.Count * outputs];
        var d = new double[c.Constraints.Count];
        for (int s = 0; s < d.Length; s++) { Array.Copy(c.Constraints[s].C, 0, cm, s * outputs, outputs); d[s] = c.Constraints[s].D; }
        return (cm, d);
    }

    // ---- attack -------------------------------------------------------------------------------------------

    private Tensor InputTensor(float[] x) => Tensor.FromFloats(_net.InputShape, x);

    /// <summary>max over constraints of (c·y − d): ≤ 0 means every constraint holds (a violation of the property).</summary>
    private static (double value, int row) Worst(VnnCase c, ReadOnlySpan<float> y)
    {
        double best = double.NegativeInfinity; int row = 0;
        for (int s = 0; s < c.Constraints.Count; s++)
        {
            var k = c.Constraints[s];
            double v = -k.D;
            for (int j = 0; j < k.C.Length; j++) v += k.C[j] * y[j];
            if (v > best) { best = v; row = s; }
        }
        return (best, row);
    }

    /// <summary>Rounds a point to float32 inside the case's box.</summary>
    private static float[] ToBoxFloat(VnnCase c, double[] x)
    {
        var f = new float[x.Length];
        for (int i = 0; i < f.Length; i++)
        {
            float v = (float)Math.Clamp(x[i], c.InputLower[i], c.InputUpper[i]);
            if (v < c.InputLower[i]) v = MathF.BitIncrement(v);
            if (v > c.InputUpper[i]) v = MathF.BitDecrement(v);
            f[i] = v;
        }
        return f;
    }

    /// <summary>Re-runs a candidate on the confirming runtime; returns it only if it violates the property there.</summary>
    private (float[] x, float[] y)? Confirm(VnnCase c, float[] x)
    {
        for (int i = 0; i < x.Length; i++) if (!(x[i] >= c.InputLower[i] && x[i] <= c.InputUpper[i])) return null;
        float[] y;
        lock (_confirmLock) y = _confirm.RunSingle(InputTensor(x), _net.OutputName).ToFloatArray();
        // Every constraint must hold with room for the float64 rounding of c·y − d, so that a counterexample is
        // one in exact arithmetic on the runtime's float32 outputs.
        foreach (var k in c.Constraints)
        {
            double v = -k.D, mag = Math.Abs(k.D);
            for (int j = 0; j < k.C.Length; j++) { v += k.C[j] * y[j]; mag += Math.Abs(k.C[j] * y[j]); }
            if (!(v <= -Outward.Gamma(k.C.Length) * mag)) return null;
        }
        return (x, y);
    }

    private float[] EngineOutput(float[] x) => _engine.Run(new Dictionary<string, Tensor> { [_net.InputName] = InputTensor(x) }, [_net.OutputName])[_net.OutputName].ToFloatArray();

    private (float[] x, float[] y)? Attack(VnnCase c, Random rng, CancellationToken ct, int restarts)
    {
        int n = c.InputLower.Length;
        if (c.Constraints.Count == 0) return Confirm(c, ToBoxFloat(c, c.InputLower));
        for (int r = 0; r < restarts && !ct.IsCancellationRequested; r++)
        {
            var x = new double[n];
            for (int i = 0; i < n; i++)
                x[i] = r == 0 ? 0.5 * (c.InputLower[i] + c.InputUpper[i]) : c.InputLower[i] + rng.NextDouble() * (c.InputUpper[i] - c.InputLower[i]);
            for (int step = 0; step < _o.AttackSteps && !ct.IsCancellationRequested; step++)
            {
                var xf = ToBoxFloat(c, x);
                using var pass = _engine.Forward(new Dictionary<string, Tensor> { [_net.InputName] = InputTensor(xf) }, [_net.OutputName], recordForBackward: true);
                var y = pass[_net.OutputName];
                var (v, row) = Worst(c, y.ToFloatArray());
                if (v <= 0 && Confirm(c, xf) is { } found) return found;
                var seed = Tensor.FromFloats(y.Shape, c.Constraints[row].C.Select(k => (float)k).ToArray());
                var g = _engine.Backward(pass, new Dictionary<string, Tensor> { [_net.OutputName] = seed }, [_net.InputName])[_net.InputName].ToFloatArray();
                double size = 0.3 * Math.Pow(0.9, step);
                for (int i = 0; i < n; i++)
                    x[i] = Math.Clamp(x[i] - size * Math.Sign(g[i]) * (c.InputUpper[i] - c.InputLower[i]), c.InputLower[i], c.InputUpper[i]);
            }
        }
        return null;
    }

    // ---- branch and bound -----------------------------------------------------------------------------------

    private sealed record Domain(double[] Lower, double[] Upper, NeuronSplit[] Splits);

    private (ProofStatus status, (float[] x, float[] y)? cex, long domains, string why) Decide(VnnCase c, CancellationToken ct,
        IReadOnlyList<VnnCase> siblings, Dictionary<VnnCase, ReluChain.SplitRoot> splitRoots)
    {
        if (c.Constraints.Count == 0) return (ProofStatus.Unknown, null, 0, "a case without output constraints is violated by any input, yet the attack could not confirm one");
        var (cm, d) = Spec(c, _net.OutputSize);
        if (_o.Method != ProofMethod.Bab)
        {
            var lb = _o.Method == ProofMethod.Ibp ? _net.SpecLowerIbp(c.InputLower, c.InputUpper, cm, d)
                : _net.SpecLower(c.InputLower, c.InputUpper, cm, d, null, _o.AlphaSteps).Lower;
            return lb.Any(v => v > 0) ? (ProofStatus.Unsat, null, 1, "") : (ProofStatus.Unknown, null, 1, $"the {_o.Method.ToString().ToLowerInvariant()} bound is not tight enough (best lower bound {lb.Max():G4})");
        }

        if (_chain is not null && _net.InputSize <= _o.InputSplitMaxDims) return DecideByInputSplit(c, _chain, ct);
        if (_chain is not null && _o.ChainReluSplit) return DecideByReluSplit(c, _chain, ct, siblings, splitRoots);

        using var pool = new DomainPool<Domain>(_o.Workers, _o.MaxOpenDomains, ct);
        pool.Push(new Domain(c.InputLower, c.InputUpper, []));
        bool inputSplit = _net.InputSize <= _o.InputSplitMaxDims;

        pool.Run(1, (taken, _) =>
        {
            var dom = taken[0];
            var sb = _net.SpecLower(dom.Lower, dom.Upper, cm, d, dom.Splits, _o.AlphaSteps);
            if (sb.Infeasible || sb.Lower.Any(v => v > 0)) return;
            // Concrete candidates: the bound's minimising vertices and the centre.
            var candidates = sb.Minimisers.Append(dom.Lower.Select((l, i) => 0.5 * (l + dom.Upper[i])).ToArray());
            foreach (var cand in candidates)
            {
                var xf = ToBoxFloat(c, cand);
                if (Worst(c, EngineOutput(xf)).value <= 0 && Confirm(c, xf) is { } cex) { pool.Sat(cex); return; }
            }
            // With every ReLU fixed, the bound is still taken over the whole box (split constraints only
            // tighten intermediate bounds), so such a domain falls back to splitting its input box.
            var children = inputSplit ? SplitInput(dom, sb) : SplitRelu(dom, sb) ?? SplitInput(dom, sb);
            if (children is null) { pool.Undecided("an input box became too small to split further"); return; }
            if (!pool.RoomToBranch()) return;
            foreach (var ch in children) pool.Push(ch);
        });
        // A layer without a bound rule met on the way makes the answer unknown, with the rule named.
        if (pool.Failure is BoundsUnsupportedException bu) return (ProofStatus.Unknown, null, pool.Domains, bu.Message);
        return pool.Outcome();
    }

    /// <summary>Bisects the input whose width, weighted by its coefficient in the most promising row, is largest.</summary>
    private static Domain[]? SplitInput(Domain dom, SpecBounds sb)
    {
        int row = Array.IndexOf(sb.Lower, sb.Lower.Max());
        var lam = sb.InputLambda[row];
        int best = -1; double score = -1;
        for (int i = 0; i < dom.Lower.Length; i++)
        {
            double w = dom.Upper[i] - dom.Lower[i];
            if (w <= 1e-9 * (1 + Math.Abs(dom.Lower[i]))) continue;
            double s = (Math.Abs(lam[i]) + 1e-12) * w;
            if (s > score) { score = s; best = i; }
        }
        if (best < 0) return null;
        double mid = 0.5 * (dom.Lower[best] + dom.Upper[best]);
        var u1 = (double[])dom.Upper.Clone(); u1[best] = mid;
        var l2 = (double[])dom.Lower.Clone(); l2[best] = mid;
        return [new Domain(dom.Lower, u1, dom.Splits), new Domain(l2, dom.Upper, dom.Splits)];
    }

    /// <summary>Splits the unstable ReLU with the largest relaxation area weighted by its coefficient (BaBSR-like).</summary>
    private static Domain[]? SplitRelu(Domain dom, SpecBounds sb)
    {
        string? bestName = null; int bestIdx = -1; double score = -1;
        var done = dom.Splits.Select(s => (s.Tensor, s.Index)).ToHashSet();
        foreach (var (name, b) in sb.ReluInputs)
        {
            var lam = sb.ReluLambda.TryGetValue(name, out var v) ? v : null;
            for (int i = 0; i < b.Length; i++)
            {
                double l = b.Lower[i], u = b.Upper[i];
                if (!(l < 0 && u > 0) || done.Contains((name, i))) continue;
                double s = (Math.Abs(lam?[i] ?? 0) + 1e-9) * u * -l / (u - l);
                if (s > score) { score = s; bestName = name; bestIdx = i; }
            }
        }
        if (bestName is null) return null;
        return [new Domain(dom.Lower, dom.Upper, [.. dom.Splits, new NeuronSplit(bestName, bestIdx, true)]),
                new Domain(dom.Lower, dom.Upper, [.. dom.Splits, new NeuronSplit(bestName, bestIdx, false)])];
    }
}
