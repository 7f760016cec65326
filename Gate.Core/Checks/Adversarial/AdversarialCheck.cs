using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Evidence;
using Gate.Core.Policy;
using Gate.Core.Report;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Core.Checks.Adversarial;

/// <summary>
/// Searches each sample's threat ball for an input that meets the adversary's goal, with the policy's methods and
/// budgets. A counterexample counts only once the production runtime, re-run on the saved float32 input, confirms
/// it; a sample is robust only if every method spent its full budget on it; anything else is undecided, and
/// undecided samples make the check INCONCLUSIVE (or FAIL when even counting them robust would fail).
/// </summary>
public sealed class AdversarialCheck : Check<AdversarialOptions>
{
    private const int ChunkSize = 64;

    public override CheckDeclaration Declaration => AdversarialDeclaration.Value;
    public override CheckPlacement Placement => CheckPlacement.Sandbox;

    public override AdversarialOptions BindOptions(CheckSpec spec, DeploymentPolicy policy) => AdversarialOptions.Bind(spec, policy);

    private enum State { Open, CleanError, Broken, Robust, Undecided }

    private sealed class Sample
    {
        public required long Index { get; init; }
        public required long Label { get; init; }
        public required float[] Clean { get; init; }
        public State State { get; set; }
        public float[]? Counterexample { get; set; }
        public float[]? ProductionLogits { get; set; }
        public string? FoundBy { get; set; }
        public double FoundAtEpsilon { get; set; }
    }

    private sealed record EpsilonOutcome(double Epsilon, int Samples, int CleanErrors, int Broken, int Robust, int Undecided, int Unconfirmed,
        IReadOnlyDictionary<string, int> FoundBy);

    public override Task<CheckResult> RunAsync(CheckContext ctx, CheckSpec spec, AdversarialOptions o, CancellationToken ct)
    {
        var production = ctx.RequireProduction();
        var ds = ctx.LoadDataset(o.Dataset);
        if (ds.Labels is null) throw new GateInputException($"dataset '{o.Dataset}' has no labels; an adversarial check needs them to know what a wrong answer is");
        var graph = ctx.Model.Graph;
        var modelInputs = graph.Inputs.Where(i => !graph.Initializers.ContainsKey(i.Name)).ToList();
        string inputName = o.Input ?? ctx.PrimaryInput.Name;
        if (modelInputs.Count != 1 || modelInputs[0].Name != inputName)
            throw new GateInputException($"{ctx.Model.FileName}: adversarial search perturbs the model's single input; the model has inputs {string.Join(", ", modelInputs.Select(i => i.Name))} and the check names '{inputName}'");
        var threat = o.Threat; // bound on the host, inside the declared range of the input it perturbs
        string output = ctx.PrimaryOutput;
        int[] sampleShape = ds.Inputs.Shape[1..];
        int dim = Tensor.ElementCount(sampleShape);

        // The samples: the first N, or the listed indices, minus (targeted) those whose true class is the target.
        long[] ids = o.Indices ?? Enumerable.Range(0, Math.Min(o.Samples ?? ds.Count, ds.Count)).Select(i => (long)i).ToArray();
        foreach (var i in ids)
            if (i < 0 || i >= ds.Count) throw new GateInputException($"{spec.Location}: {spec.Path}.indices: index {i} is outside dataset '{o.Dataset}' ({ds.Count} samples)");
        var data = ds.Inputs.Floats!;
        var samples = ids.Where(i => !o.Goal.Targeted || ds.Labels[i] != o.Goal.TargetClass)
            .Select(i => new Sample { Index = i, Label = ds.Labels[i], Clean = data.AsSpan((int)i * dim, dim).ToArray() }).ToList();
        int excluded = ids.Length - samples.Count;
        // A clean input outside the declared range admits no perturbed point at all, so its search could only ever
        // report "robust": that would be a pass by construction, hence bad input.
        foreach (var s in samples)
            for (int i = 0; i < dim; i++)
                if (!(s.Clean[i] >= threat.Min && s.Clean[i] <= threat.Max))
                    throw new GateInputException($"dataset '{o.Dataset}' sample {s.Index}, element {i}: value {s.Clean[i]} is outside the range " +
                        $"[{threat.Min}, {threat.Max}] declared for input '{inputName}' in spec.model.inputs");

        var r = NewResult(spec);
        r.Runtime = production.Info.Name;
        if (samples.Count == 0)
            return Task.FromResult(CheckResult.Inconclusive(spec, "no samples to attack (every selected sample already has the target class)"));

        Tensor Batch(IReadOnlyList<float[]> xs) => Tensor.FromFloats([xs.Count, .. sampleShape], xs.SelectMany(x => x).ToArray());
        float[] RunProduction(IReadOnlyList<float[]> xs) => production.RunSingle(Batch(xs), output).ToFloatArray();

        // Clean predictions on the production runtime: a sample already failing at ε = 0 needs no search.
        long cleanQueries = 0;
        int classes = 0;
        for (int start = 0; start < samples.Count; start += 256)
        {
            ct.ThrowIfCancellationRequested();
            var part = samples.Skip(start).Take(256).ToList();
            var z = RunProduction(part.Select(s => s.Clean).ToList());
            cleanQueries += part.Count;
            classes = z.Length / part.Count;
            if (o.Goal.TargetClass >= classes)
                throw new GateInputException($"{spec.Location}: {spec.Path}.goal.targetClass: {o.Goal.TargetClass} is not a class of output '{output}' ({classes} classes)");
            for (int j = 0; j < part.Count; j++)
                if (o.Goal.IsMet(z.AsSpan(j * classes, classes), part[j].Label)) part[j].State = State.CleanError;
        }

        var methods = o.Search.Select(m => (Spec: m, Impl: AttackMethods.Find(m.Method)!)).ToList();
        var labels = methods.Select((m, i) => methods.Count(x => x.Spec.Method == m.Spec.Method) > 1 ? $"{m.Spec.Method}{i + 1}" : m.Spec.Method).ToList();
        var usage = methods.Select(_ => new MethodUsage()).ToList();
        var budget = new QueryBudget(o.QueryBudget, o.WallTime);
        ulong seed = ctx.SeedFor(spec.Id);
        var engineOracle = methods.Any(m => m.Impl.WhiteBox)
            ? new ModelOracle(t => ctx.Engine.Run(new Dictionary<string, Tensor> { [inputName] = t }, [output])[output], ctx.Engine, inputName, output, sampleShape)
            : null;
        var productionOracle = new ModelOracle(t => production.RunSingle(t, output), null, inputName, output, sampleShape);
        long confirmQueries = 0;

        // Ascending ε: a counterexample at a smaller ε lies in every larger ball, so it carries over (the curve is a
        // valid lower bound of the true curve at every point, with the main ε searched like any other).
        var epsilons = o.Sweep.Append(o.Threat.Epsilon).Distinct().Order().ToList();
        int attacked = samples.Count(s => s.State == State.Open);

        // Every method in turn on one chunk of samples; returns how many engine findings production did not confirm.
        int SearchChunk(Sample[] chunk, ThreatModel t, double eps)
        {
            int unconfirmed = 0;
            var fullySearched = chunk.ToDictionary(s => s, _ => true);
            for (int mi = 0; mi < methods.Count; mi++)
            {
                var rows = chunk.Where(s => s.State == State.Open).ToList();
                if (rows.Count == 0) break;
                var (mspec, impl) = methods[mi];
                string label = labels[mi];
                long total = impl.QueriesPerSample(mspec) * attacked * epsilons.Count;
                var u = usage[mi];
                var batch = new AttackBatch(t, o.Goal, rows.Select(s => s.Clean).ToList(), rows.Select(s => s.Label).ToArray(),
                    rows.Select(s => s.Index).ToArray(), impl.WhiteBox ? engineOracle! : productionOracle, budget, u, seed,
                    stream: BitConverter.DoubleToInt64Bits(eps) * 31 + mi,
                    onProgress: () => ctx.Progress.Report(new ProgressUpdate(spec.Id, label, u.Queries, total, "queries")));
                impl.Attack(batch, mspec, ct);

                // Confirmation: the saved float32 point must be admitted and fail on the production runtime.
                var found = Enumerable.Range(0, rows.Count).Where(j => batch.Found[j] is not null).ToList();
                if (found.Count > 0)
                {
                    var z = RunProduction(found.Select(j => batch.Found[j]!).ToList());
                    confirmQueries += found.Count;
                    for (int f = 0; f < found.Count; f++)
                    {
                        var s = rows[found[f]];
                        var x = batch.Found[found[f]]!;
                        var zs = z.AsSpan(f * classes, classes);
                        if (t.Admits(s.Clean, x) && o.Goal.IsMet(zs, s.Label))
                        {
                            s.State = State.Broken; s.Counterexample = x; s.ProductionLogits = zs.ToArray();
                            s.FoundBy = label; s.FoundAtEpsilon = eps;
                        }
                        else unconfirmed++;
                    }
                }
                for (int j = 0; j < rows.Count; j++) if (!batch.Completed[j]) fullySearched[rows[j]] = false;
            }
            foreach (var s in chunk)
                if (s.State == State.Open) s.State = fullySearched[s] ? State.Robust : State.Undecided;
            return unconfirmed;
        }

        var outcomes = new List<EpsilonOutcome>();
        foreach (var eps in epsilons)
        {
            var t = threat.WithEpsilon(eps);
            foreach (var s in samples) if (s.State is State.Robust or State.Undecided) s.State = State.Open;
            int unconfirmed = 0;
            foreach (var chunk in samples.Where(s => s.State == State.Open).ToList().Chunk(ChunkSize))
                unconfirmed += SearchChunk(chunk, t, eps);
            outcomes.Add(new EpsilonOutcome(eps, samples.Count, samples.Count(s => s.State == State.CleanError), samples.Count(s => s.State == State.Broken),
                samples.Count(s => s.State == State.Robust), samples.Count(s => s.State == State.Undecided), unconfirmed,
                labels.ToDictionary(l => l, l => samples.Count(s => s.State == State.Broken && s.FoundBy == l && s.FoundAtEpsilon <= eps))));
            if (eps == o.Threat.Epsilon) WriteEvidence(ctx, samples, sampleShape, classes, inputName, output, r);
        }

        var main = outcomes.Single(x => x.Epsilon == o.Threat.Epsilon);
        Report(r, spec, o, threat, main, attacked, excluded, methods.Select(m => m.Impl.Describe(m.Spec)).ToList(), budget);
        foreach (var (label, i) in labels.Select((l, i) => (l, i)))
        {
            r.BudgetUsed[$"{label}.queries"] = usage[i].Queries;
            r.BudgetUsed[$"{label}.gradients"] = usage[i].Gradients;
            r.Metrics[$"found.{label}"] = main.FoundBy[label];
        }
        r.BudgetUsed["queries"] = budget.Used;
        r.BudgetUsed["clean.queries"] = cleanQueries;
        r.BudgetUsed["confirm.queries"] = confirmQueries;
        r.BudgetUsed["wallTimeMs"] = (long)budget.Elapsed.TotalMilliseconds;
        if (o.Sweep.Length > 0)
        {
            // The documented curve shape (ReportDetails.CurvePoint): an undecided point has no value, only its bounds.
            ReportDetails.SetCurve(r.Details, outcomes.Select(e =>
            {
                var (lo, hi) = Statistics.WilsonInterval(e.Robust, e.Samples, o.Confidence ?? 0.95);
                return new CurvePoint(e.Epsilon, e.Undecided == 0 ? (double)e.Robust / e.Samples : null, lo,
                    e.Undecided == 0 ? hi : Statistics.WilsonInterval(e.Robust + e.Undecided, e.Samples, o.Confidence ?? 0.95).Upper, e.Samples, e.Undecided);
            }));
        }
        r.Details["norm"] = threat.NormName;
        r.Details["goal"] = o.Goal.Describe();
        if (Engine.Ops.QuantizeLinearOp.StraightThroughNote(ctx.Model) is { } ste) r.Details["gradient"] = ste;
        return Task.FromResult(r);
    }

    private static void Report(CheckResult r, CheckSpec spec, AdversarialOptions o, ThreatModel threat, EpsilonOutcome m, int attacked,
        int excluded, List<string> methodText, QueryBudget budget)
    {
        double confidence = o.Confidence ?? 0.95;
        int n = m.Samples;
        var (lo, hi) = Statistics.WilsonInterval(m.Robust, n, confidence);
        r.Metrics["samples"] = n;
        r.Metrics["epsilon"] = o.Threat.Epsilon;
        r.Metrics["cleanErrors"] = m.CleanErrors;
        r.Metrics["counterexamples"] = m.Broken;
        r.Metrics["robust"] = m.Robust;
        r.Metrics["undecided"] = m.Undecided;
        r.Metrics["unconfirmed"] = m.Unconfirmed;
        r.Metrics["robustAccuracyLower"] = lo;
        if (m.Undecided == 0)
        {
            r.Metrics["robustAccuracy"] = (double)m.Robust / n;
            r.Metrics["robustAccuracyUpper"] = hi;
            if (attacked > 0) r.Metrics["attackSuccessRate"] = (double)m.Broken / attacked;
        }
        else
        {
            r.Metrics["robustAccuracyUpper"] = Statistics.WilsonInterval(m.Robust + m.Undecided, n, confidence).Upper;
            r.Verdict = Verdict.Inconclusive;
            r.Reasons.Add($"{m.Undecided} of {n} samples were not fully searched: {budget.ExhaustedReason ?? "budget exhausted"}; they are not counted as robust");
        }

        // Judged values: the most favourable completion of undecided samples (so FAIL only when certain); each
        // requirement's `bound` picks the point estimate or an end of the Wilson interval (MetricBound.JudgedMetric).
        int robustIfUndecidedHeld = m.Robust + m.Undecided;
        var (raLo, raHi) = Statistics.WilsonInterval(robustIfUndecidedHeld, n, confidence);
        var judged = new Dictionary<string, double>
        {
            ["robustAccuracy"] = (double)robustIfUndecidedHeld / n, ["robustAccuracyLower"] = raLo, ["robustAccuracyUpper"] = raHi,
            ["counterexamples"] = m.Broken,
        };
        if (attacked > 0)
        {
            var (asLo, asHi) = Statistics.WilsonInterval(m.Broken, attacked, confidence);
            judged["attackSuccessRate"] = (double)m.Broken / attacked;
            judged["attackSuccessRateLower"] = asLo;
            judged["attackSuccessRateUpper"] = asHi;
        }
        Requirements.Apply(r, spec.Require, judged);

        string within = $"within {threat.Describe()} ({o.Goal.Describe()}) by {string.Join(" and ", methodText)}";
        r.Coverage = $"no violation found for {m.Robust} of {n} samples {within}" +
            (m.CleanErrors > 0 ? $"; {m.CleanErrors} failed without perturbation" : "") +
            (m.Broken > 0 ? $"; {m.Broken} confirmed counterexamples" : "") +
            (m.Undecided > 0 ? $"; {m.Undecided} samples not decided ({budget.ExhaustedReason})" : "") +
            (m.Unconfirmed > 0 ? $"; {m.Unconfirmed} candidates found by the built-in engine were not confirmed by {r.Runtime} and do not count" : "") +
            (excluded > 0 ? $"; {excluded} samples of the target class excluded" : "");
        string ra = m.Undecided == 0 ? ((double)m.Robust / n).ToString("P1", CultureInfo.InvariantCulture) : "undetermined";
        r.Summary = $"robust accuracy {ra} (95% CI [{lo.ToString("P1", CultureInfo.InvariantCulture)}, {r.Metrics["robustAccuracyUpper"].ToString("P1", CultureInfo.InvariantCulture)}]) " +
            $"on {n} samples at {threat.Describe()}; {m.Broken} counterexamples confirmed on {r.Runtime}";
        if (Math.Abs(confidence - 0.95) > 1e-12) r.Summary = r.Summary.Replace("95% CI", $"{confidence:P0} CI", StringComparison.Ordinal);
    }

    /// <summary>One replayable .npy per counterexample, plus its record and the outputs of both runtimes.</summary>
    private static void WriteEvidence(CheckContext ctx, List<Sample> samples, int[] sampleShape, int classes, string inputName, string output, CheckResult r)
    {
        // Every sample's outcome, so "which samples were not reached" has an answer, not just a count.
        var outcomes = new JsonArray(samples.Select(s => (JsonNode)new JsonObject
        {
            ["sampleIndex"] = s.Index, ["label"] = s.Label,
            ["outcome"] = s.State switch { State.CleanError => "failed-unperturbed", State.Broken => "counterexample", State.Robust => "no-violation-found", _ => "undecided" },
            ["method"] = s.FoundBy,
        }).ToArray());
        ctx.Evidence.WriteText("samples.json", outcomes.ToJsonString(new JsonSerializerOptions { WriteIndented = true }),
            "outcome per sample at the policy's ε: failed-unperturbed, counterexample, no-violation-found or undecided (budget)");
        var broken = samples.Where(s => s.State == State.Broken).OrderBy(s => s.Index).ToList();
        if (broken.Count == 0) return;
        var xs = broken.SelectMany(s => s.Counterexample!).ToArray();
        // Black-box search (square) may run on a model the built-in engine cannot compile; then only production outputs are recorded.
        float[]? builtin;
        try { builtin = ctx.Engine.Run(new Dictionary<string, Tensor> { [inputName] = Tensor.FromFloats([broken.Count, .. sampleShape], xs) }, [output])[output].ToFloatArray(); }
        catch (GateInputException) { builtin = null; }
        var records = new JsonArray();
        for (int i = 0; i < broken.Count; i++)
        {
            var s = broken[i];
            string file = $"cex-{s.Index:D6}.npy";
            var ef = ctx.Evidence.WriteNpy(file, Tensor.FromFloats([1, .. sampleShape], s.Counterexample!),
                $"counterexample for sample {s.Index} (label {s.Label}), a value of input '{inputName}'; replay with gate run");
            float[]? zb = builtin?.AsSpan(i * classes, classes).ToArray();
            records.Add(new JsonObject
            {
                ["sampleIndex"] = s.Index, ["file"] = ef.Path, ["label"] = s.Label, ["method"] = s.FoundBy,
                ["foundAtEpsilon"] = s.FoundAtEpsilon,
                ["linfNorm"] = new ThreatModel(PerturbationNorm.Linf, 0, 0, 0).Distance(s.Clean, s.Counterexample),
                ["l2Norm"] = new ThreatModel(PerturbationNorm.L2, 0, 0, 0).Distance(s.Clean, s.Counterexample),
                ["productionPrediction"] = AttackGoal.ArgMax(s.ProductionLogits), ["builtinPrediction"] = zb is null ? null : AttackGoal.ArgMax(zb),
                ["productionLogits"] = new JsonArray(s.ProductionLogits!.Select(v => (JsonNode)(double)v).ToArray()),
                ["builtinLogits"] = zb is null ? null : new JsonArray(zb.Select(v => (JsonNode)(double)v).ToArray()),
            });
        }
        ctx.Evidence.WriteText("counterexamples.json", records.ToJsonString(new JsonSerializerOptions { WriteIndented = true }),
            "every confirmed counterexample: sample index, method, perturbation norms, outputs of both runtimes");
        ctx.Evidence.WriteNpy("counterexamples-logits-production.npy", Tensor.FromFloats([broken.Count, classes], broken.SelectMany(s => s.ProductionLogits!).ToArray()),
            $"production-runtime outputs for the counterexamples, in sample-index order ({r.Runtime})");
        if (builtin is not null)
            ctx.Evidence.WriteNpy("counterexamples-logits-builtin.npy", Tensor.FromFloats([broken.Count, classes], builtin),
                "built-in engine outputs for the counterexamples, in sample-index order");
    }
}
