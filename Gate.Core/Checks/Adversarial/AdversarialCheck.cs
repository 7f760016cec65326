using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.Checks;
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
public sealed class AdversarialCheck : ShardedCheck<AdversarialOptions>, IRefusesModels
{
    private const int ChunkSize = 64;

    public override CheckDeclaration Declaration => AdversarialDeclaration.Value;
    public override CheckPlacement Placement => CheckPlacement.Sandbox;

    public override AdversarialOptions BindOptions(CheckSpec spec, DeploymentPolicy policy) => AdversarialOptions.Bind(spec, policy);

    /// <summary>
    /// The input the search perturbs: <c>threat.input</c>; else, for a single-input model, the first declared input
    /// (else the model's); else the model's only float input. Null when a multi-input model has several float inputs
    /// (or none) and the policy names none: <see cref="Refuse"/> says so at plan time.
    /// </summary>
    public static string? PerturbedInput(string? named, DeploymentPolicy policy, Model.OnnxModel model)
    {
        if (named is not null) return named;
        var dataInputs = DataInputs(model);
        if (dataInputs.Count <= 1) return policy.Spec.Model.Inputs.FirstOrDefault()?.Name ?? dataInputs.FirstOrDefault()?.Name ?? "";
        var floats = dataInputs.Where(i => i.ElementType.IsFloating()).ToList();
        return floats.Count == 1 ? floats[0].Name : null;
    }

    private static List<Model.ValueInfo> DataInputs(Model.OnnxModel model) =>
        model.Graph.Inputs.Where(i => !model.Graph.Initializers.ContainsKey(i.Name)).ToList();

    /// <summary>
    /// The input the search perturbs (<see cref="PerturbedInput"/>) must be a continuous one; on a multi-input model it
    /// must be named where the choice is not the only float input, and its declared range must be the one the threat
    /// binds. Refused at plan time with the reason, rather than every sample ending undecided.
    /// </summary>
    public void Refuse(CheckSpec spec, object options, DeploymentPolicy policy, Model.OnnxModel model, List<PolicyError> errors)
    {
        var o = (AdversarialOptions)options;
        var dataInputs = DataInputs(model);
        var floats = dataInputs.Where(i => i.ElementType.IsFloating()).Select(i => i.Name).ToList();
        var threat = (PolicyMapping)spec.Node["threat"]!;
        PolicyNode at = threat["input"] ?? threat;
        string inputList = string.Join(", ", dataInputs.Select(i => $"{i.Name} ({i.ElementType.OnnxName()})"));
        var name = PerturbedInput(o.Input, policy, model);
        if (name is null && floats.Count > 1)
        {
            errors.Add(new PolicyError(at.Location, at.Path,
                $"the model has {floats.Count} float inputs ({string.Join(", ", floats)}) and the check does not say which one the search perturbs: " +
                "name it in threat.input (the other inputs are held at each sample's values)"));
            return;
        }
        name ??= dataInputs.FirstOrDefault()?.Name ?? "";
        var vi = dataInputs.FirstOrDefault(i => i.Name == name);
        if (vi is null)
        { errors.Add(new PolicyError(at.Location, at.Path, $"the model has no input '{name}' to perturb (inputs: {string.Join(", ", dataInputs.Select(i => i.Name))})")); return; }
        if (vi.ElementType.IsInteger())
        {
            errors.Add(new PolicyError(at.Location, at.Path,
                $"the adversarial check would perturb input '{name}', which is {vi.ElementType.OnnxName()} (token ids or indices): an Lp ball of radius ε " +
                "around integers is not a continuous threat model, so this search cannot be run on it. " +
                (floats.Count > 0 ? $"Name a float input in threat.input ({string.Join(", ", floats)})" : "The model has no float input to perturb: remove the check") +
                " (robustness of a text model to token substitutions is not measured by this check)"));
            return;
        }
        // The threat keeps the search inside the declared range of threat.input, else of the first declared input:
        // a default that is another input would be bounded by the wrong range.
        if (o.Input is null && policy.Spec.Model.Inputs.FirstOrDefault() is { } first && first.Name != name)
            errors.Add(new PolicyError(at.Location, at.Path,
                $"the search would perturb '{name}' (the model's only float input; inputs: {inputList}), but the threat's value range is that of '{first.Name}', " +
                $"the first input in spec.model.inputs: name the perturbed input in threat.input ({name})"));
    }

    private enum State { Open, CleanError, Broken, Robust, Undecided }

    private static readonly string[] StateNames = ["open", "failed-unperturbed", "counterexample", "no-violation-found", "undecided"];

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
        /// <summary>The state after each ε of the ascending sweep, and how many unconfirmed engine findings it had there.</summary>
        public List<State> StateAt { get; } = [];
        public List<int> UnconfirmedAt { get; } = [];
    }

    private sealed record EpsilonOutcome(double Epsilon, int Samples, int CleanErrors, int Broken, int Robust, int Undecided, int Unconfirmed,
        IReadOnlyDictionary<string, int> FoundBy);

    /// <summary>The samples to attack (the first N, or the listed indices): the check's work units, in this order.</summary>
    private static long[] Units(AdversarialOptions o, Dataset ds, CheckSpec spec)
    {
        long[] ids = o.Indices ?? Enumerable.Range(0, Math.Min(o.Samples ?? ds.Count, ds.Count)).Select(i => (long)i).ToArray();
        foreach (var i in ids)
            if (i < 0 || i >= ds.Count) throw new GateInputException($"{spec.Location}: {spec.Path}.indices: index {i} is outside dataset '{o.Dataset}' ({ds.Count} samples)");
        return ids;
    }

    /// <summary>Method labels as reported (a method named twice is numbered).</summary>
    private static List<string> Labels(AdversarialOptions o) =>
        o.Search.Select((m, i) => o.Search.Count(x => x.Method == m.Method) > 1 ? $"{m.Method}{i + 1}" : m.Method).ToList();

    /// <summary>
    /// This shard's samples: each is searched on its own random streams (policy seed, ε, method, sample index,
    /// restart) and every production confirmation runs the sample alone, so a sample's record does not depend on which
    /// other samples share its shard. The query budget is this shard's share (in proportion to its samples); the
    /// wall-time budget applies to each shard, since shards run side by side.
    /// </summary>
    protected override Task<CheckResult> RunUnitsAsync(CheckContext ctx, CheckSpec spec, AdversarialOptions o, ShardSelection shard, CancellationToken ct)
    {
        var production = ctx.RequireProduction();
        var ds = ctx.LoadDataset(o.Dataset);
        if (ds.Labels is null) throw new GateInputException($"dataset '{o.Dataset}' has no labels; an adversarial check needs them to know what a wrong answer is");
        // The perturbed input (refused at plan time unless it is a float input of the model); a multi-input model's
        // other inputs are held at each sample's own values in every query, gradient and confirmation.
        string inputName = PerturbedInput(o.Input, ctx.Policy, ctx.Model)
            ?? throw new GateInputException($"{ctx.Model.FileName}: the check does not name the input to perturb (threat.input) and the model has several float inputs");
        if (!ds.Feeds.TryGetValue(inputName, out var perturbed) && (ds.Feeds.Count > 1 || inputName != ctx.PrimaryInput.Name))
            throw new GateInputException($"dataset '{o.Dataset}' has no array for input '{inputName}', the input the check perturbs (arrays: {string.Join(", ", ds.Feeds.Keys)})");
        perturbed ??= ds.Inputs;
        var held = ds.Feeds.Where(kv => kv.Key != inputName).ToList();
        IReadOnlyDictionary<string, Tensor> Held(IReadOnlyList<long> ids)
        {
            var rows = ids.Select(i => (int)i).ToList();
            return held.ToDictionary(kv => kv.Key, kv => MechanisticData.Rows(kv.Value, rows), StringComparer.Ordinal);
        }
        Func<IReadOnlyList<long>, IReadOnlyDictionary<string, Tensor>>? heldInputs = held.Count == 0 ? null : Held;
        Dictionary<string, Tensor> Feed(Tensor x, IReadOnlyList<long> ids) =>
            new(held.Count == 0 ? [] : Held(ids)) { [inputName] = x };
        var threat = o.Threat; // bound on the host, inside the declared range of the input it perturbs
        string output = ctx.PrimaryOutput;
        int[] sampleShape = perturbed.Shape[1..];
        int dim = Tensor.ElementCount(sampleShape);

        // The units: the first N samples or the listed indices; this shard's range of them. Samples of the target class
        // (targeted goal) are units too, recorded as excluded, so the unit count never depends on the data.
        long[] ids = Units(o, ds, spec);
        var (first, end) = shard.Range(ids.Length);
        var mine = ids[(int)first..(int)end];
        var data = perturbed.Floats!;
        var samples = mine.Where(i => !o.Goal.Targeted || ds.Labels[i] != o.Goal.TargetClass)
            .Select(i => new Sample { Index = i, Label = ds.Labels[i], Clean = data.AsSpan((int)i * dim, dim).ToArray() }).ToList();
        // A clean input outside the declared range admits no perturbed point at all, so its search could only ever
        // report "robust": that would be a pass by construction, hence bad input.
        foreach (var s in samples)
            for (int i = 0; i < dim; i++)
                if (!(s.Clean[i] >= threat.Min && s.Clean[i] <= threat.Max))
                    throw new GateInputException($"dataset '{o.Dataset}' sample {s.Index}, element {i}: value {s.Clean[i]} is outside the range " +
                        $"[{threat.Min}, {threat.Max}] declared for input '{inputName}' in spec.model.inputs");

        Tensor Batch(IReadOnlyList<float[]> xs) => Tensor.FromFloats([xs.Count, .. sampleShape], xs.SelectMany(x => x).ToArray());
        float[] RunProduction(IReadOnlyList<float[]> xs, IReadOnlyList<long> ids) => production.Run(Feed(Batch(xs), ids), [output])[output].ToFloatArray();

        // Clean predictions on the production runtime: a sample already failing at ε = 0 needs no search.
        long cleanQueries = 0;
        int classes = 0;
        for (int start = 0; start < samples.Count; start += 256)
        {
            ct.ThrowIfCancellationRequested();
            var part = samples.Skip(start).Take(256).ToList();
            var z = RunProduction(part.Select(s => s.Clean).ToList(), part.Select(s => s.Index).ToList());
            cleanQueries += part.Count;
            classes = z.Length / part.Count;
            if (o.Goal.TargetClass >= classes)
                throw new GateInputException($"{spec.Location}: {spec.Path}.goal.targetClass: {o.Goal.TargetClass} is not a class of output '{output}' ({classes} classes)");
            for (int j = 0; j < part.Count; j++)
                if (o.Goal.IsMet(z.AsSpan(j * classes, classes), part[j].Label)) part[j].State = State.CleanError;
        }

        var methods = o.Search.Select(m => (Spec: m, Impl: AttackMethods.Find(m.Method)!)).ToList();
        var labels = Labels(o);
        var usage = methods.Select(_ => new MethodUsage()).ToList();
        var budget = new QueryBudget(o.QueryBudget is { } q ? shard.Share(q, ids.Length) : null, o.WallTime);
        ulong seed = ctx.SeedFor(spec.Id);
        var engineOracle = methods.Any(m => m.Impl.WhiteBox)
            ? new ModelOracle(f => ctx.Engine.Run(f, [output])[output], ctx.Engine, inputName, output, sampleShape, heldInputs)
            : null;
        var productionOracle = new ModelOracle(f => production.Run(f, [output])[output], null, inputName, output, sampleShape, heldInputs);
        long confirmQueries = 0;

        // Ascending ε: a counterexample at a smaller ε lies in every larger ball, so it carries over (the curve is a
        // valid lower bound of the true curve at every point, with the main ε searched like any other).
        var epsilons = Epsilons(o);
        int attacked = samples.Count(s => s.State == State.Open);

        // Every method in turn on one chunk of samples.
        void SearchChunk(Sample[] chunk, ThreatModel t, double eps)
        {
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

                // Confirmation: the saved float32 point must be admitted and fail on the production runtime (run alone,
                // so its logits do not depend on what else was found in this chunk).
                for (int j = 0; j < rows.Count; j++)
                {
                    if (batch.Found[j] is not { } x) continue;
                    var s = rows[j];
                    var zs = RunProduction([x], [s.Index]);
                    confirmQueries++;
                    if (t.Admits(s.Clean, x) && o.Goal.IsMet(zs, s.Label))
                    {
                        s.State = State.Broken; s.Counterexample = x; s.ProductionLogits = zs;
                        s.FoundBy = label; s.FoundAtEpsilon = eps;
                    }
                    else s.UnconfirmedAt[^1]++;
                }
                for (int j = 0; j < rows.Count; j++) if (!batch.Completed[j]) fullySearched[rows[j]] = false;
            }
            foreach (var s in chunk)
                if (s.State == State.Open) s.State = fullySearched[s] ? State.Robust : State.Undecided;
        }

        foreach (var eps in epsilons)
        {
            var t = threat.WithEpsilon(eps);
            foreach (var s in samples)
            {
                if (s.State is State.Robust or State.Undecided) s.State = State.Open;
                s.UnconfirmedAt.Add(0);
            }
            foreach (var chunk in samples.Where(s => s.State == State.Open).ToList().Chunk(ChunkSize))
                SearchChunk(chunk, t, eps);
            foreach (var s in samples) s.StateAt.Add(s.State);
        }

        // One record per unit; a counterexample's evidence (its .npy and both runtimes' outputs, each run alone) is
        // written here, with the unit, so merging only concatenates.
        var byIndex = samples.ToDictionary(s => s.Index);
        var units = new List<JsonObject>();
        foreach (var id in mine)
        {
            if (!byIndex.TryGetValue(id, out var s)) { units.Add(new JsonObject { ["sample"] = id, ["excluded"] = true }); continue; }
            var rec = new JsonObject
            {
                ["sample"] = s.Index, ["label"] = s.Label,
                ["states"] = new JsonArray(s.StateAt.Select(x => (JsonNode)StateNames[(int)x]).ToArray()),
                ["unconfirmed"] = new JsonArray(s.UnconfirmedAt.Select(x => (JsonNode)x).ToArray()),
                ["method"] = s.FoundBy, ["foundAtEpsilon"] = s.State == State.Broken ? s.FoundAtEpsilon : null,
            };
            if (s.State == State.Broken && s.FoundAtEpsilon <= o.Threat.Epsilon)
                rec["counterexample"] = WriteCounterexample(ctx, s, sampleShape, inputName, output, Feed(Tensor.FromFloats([1, .. sampleShape], s.Counterexample!), [s.Index]));
            units.Add(rec);
        }
        var state = new JsonObject
        {
            ["queries"] = budget.Used, ["queryLimit"] = budget.QueryLimit, ["exhausted"] = budget.ExhaustedReason,
            ["cleanQueries"] = cleanQueries, ["confirmQueries"] = confirmQueries, ["wallTimeMs"] = (long)budget.Elapsed.TotalMilliseconds,
            ["gradientPasses"] = engineOracle?.GradientTimes.ToJson(),
            ["methods"] = new JsonObject(labels.Select((l, i) => KeyValuePair.Create(l, (JsonNode?)new JsonObject { ["queries"] = usage[i].Queries, ["gradients"] = usage[i].Gradients }))),
        };
        return Task.FromResult(Partial(spec, shard, ids.Length, units, state, production.Info.Name));
    }

    private static List<double> Epsilons(AdversarialOptions o) => o.Sweep.Append(o.Threat.Epsilon).Distinct().Order().ToList();

    /// <summary>The result from every sample's record: counts per ε, metrics, requirements, merged evidence.</summary>
    protected override CheckResult MergeUnits(CheckContext ctx, CheckSpec spec, AdversarialOptions o, ShardParts parts, string? runtime)
    {
        var r = NewResult(spec);
        r.Runtime = runtime;
        var epsilons = Epsilons(o);
        int mainAt = epsilons.IndexOf(o.Threat.Epsilon);
        var labels = Labels(o);
        var rows = parts.Units.Where(u => u["excluded"]?.GetValue<bool>() != true).ToList();
        int excluded = parts.Units.Count - rows.Count;
        if (rows.Count == 0)
            return CheckResult.Inconclusive(spec, "no samples to attack (every selected sample already has the target class)");
        State At(JsonObject u, int e)
        {
            var name = (u["states"] as JsonArray)?[e]?.GetValue<string>();
            int k = Array.IndexOf(StateNames, name);
            return k > 0 ? (State)k : throw new InvalidDataException($"sample {u["sample"]}: no valid state at ε index {e}");
        }
        int Unconfirmed(JsonObject u, int e) => (u["unconfirmed"] as JsonArray)?[e]?.GetValue<int>() ?? throw new InvalidDataException($"sample {u["sample"]}: no unconfirmed count");
        int attacked = rows.Count(u => At(u, 0) != State.CleanError);

        var outcomes = epsilons.Select((eps, e) => new EpsilonOutcome(eps, rows.Count,
            rows.Count(u => At(u, e) == State.CleanError), rows.Count(u => At(u, e) == State.Broken),
            rows.Count(u => At(u, e) == State.Robust), rows.Count(u => At(u, e) == State.Undecided), rows.Sum(u => Unconfirmed(u, e)),
            labels.ToDictionary(l => l, l => rows.Count(u => At(u, e) == State.Broken && u["method"]?.GetValue<string>() == l)))).ToList();

        var states = parts.Parts.Select(p => p.State).ToList();
        long Sum(string key) => states.Sum(st => st[key]?.GetValue<long>() ?? 0);
        var exhausted = parts.Parts.Where(p => p.State["exhausted"] is not null)
            .Select(p => parts.Parts.Count == 1 ? p.State["exhausted"]!.GetValue<string>() : $"shard {p.Index}: {p.State["exhausted"]!.GetValue<string>()}").ToList();
        string? exhaustedReason = exhausted.Count > 0 ? string.Join("; ", exhausted) : null;

        var main = outcomes[mainAt];
        var threat = o.Threat;
        var methods = o.Search.Select(m => AttackMethods.Find(m.Method)!.Describe(m)).ToList();
        Report(r, spec, o, threat, main, attacked, excluded, methods, exhaustedReason);
        foreach (var label in labels)
        {
            r.BudgetUsed[$"{label}.queries"] = states.Sum(st => st["methods"]?[label]?["queries"]?.GetValue<long>() ?? 0);
            r.BudgetUsed[$"{label}.gradients"] = states.Sum(st => st["methods"]?[label]?["gradients"]?.GetValue<long>() ?? 0);
            r.Metrics[$"found.{label}"] = main.FoundBy[label];
        }
        r.BudgetUsed["queries"] = Sum("queries");
        r.BudgetUsed["clean.queries"] = Sum("cleanQueries");
        r.BudgetUsed["confirm.queries"] = Sum("confirmQueries");
        // Shards run side by side: the check took as long as its slowest shard.
        r.BudgetUsed["wallTimeMs"] = states.Max(st => st["wallTimeMs"]?.GetValue<long>() ?? 0);
        if (states.Select(st => st["gradientPasses"]).OfType<JsonObject>().ToList() is { Count: > 0 } passes)
        {
            long count = passes.Sum(p => p["count"]?.GetValue<long>() ?? 0);
            double later = passes.Sum(p => p["laterMs"]?.GetValue<double>() ?? 0);
            long laterCount = passes.Sum(p => Math.Max(0, (p["count"]?.GetValue<long>() ?? 0) - 1));
            r.Details["gradientPasses"] = new JsonObject
            {
                ["count"] = count, ["firstMs"] = passes.Max(p => p["firstMs"]?.GetValue<double>() ?? 0),
                ["laterMeanMs"] = laterCount > 0 ? Math.Round(later / laterCount, 3) : null,
                ["note"] = "timing only: the first pass (one-time engine costs) apart from the mean of the later ones; each shard's first counts as a first",
            };
        }
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
        WriteEvidence(ctx, rows, mainAt, r);
        return r;
    }

    private static void Report(CheckResult r, CheckSpec spec, AdversarialOptions o, ThreatModel threat, EpsilonOutcome m, int attacked,
        int excluded, List<string> methodText, string? exhaustedReason)
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
            r.Reasons.Add($"{m.Undecided} of {n} samples were not fully searched: {exhaustedReason ?? "budget exhausted"}; they are not counted as robust");
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
            (m.Undecided > 0 ? $"; {m.Undecided} samples not decided ({exhaustedReason})" : "") +
            (m.Unconfirmed > 0 ? $"; {m.Unconfirmed} candidates found by the built-in engine were not confirmed by {r.Runtime} and do not count" : "") +
            (excluded > 0 ? $"; {excluded} samples of the target class excluded" : "");
        string ra = m.Undecided == 0 ? ((double)m.Robust / n).ToString("P1", CultureInfo.InvariantCulture) : "undetermined";
        r.Summary = $"robust accuracy {ra} (95% CI [{lo.ToString("P1", CultureInfo.InvariantCulture)}, {r.Metrics["robustAccuracyUpper"].ToString("P1", CultureInfo.InvariantCulture)}]) " +
            $"on {n} samples at {threat.Describe()}; {m.Broken} counterexamples confirmed on {r.Runtime}";
        if (Math.Abs(confidence - 0.95) > 1e-12) r.Summary = r.Summary.Replace("95% CI", $"{confidence:P0} CI", StringComparison.Ordinal);
    }

    /// <summary>One sample's counterexample: its replayable .npy and the outputs of both runtimes, each run on it alone.</summary>
    /// <summary>
    /// A counterexample's evidence: the perturbed input's value (named in the record), and for a multi-input model
    /// every other input at the sample's own values, so that <c>gate run</c> replays it with all inputs.
    /// </summary>
    private static JsonObject WriteCounterexample(CheckContext ctx, Sample s, int[] sampleShape, string inputName, string output, Dictionary<string, Tensor> feed)
    {
        string file = $"cex-{s.Index:D6}.npy";
        var x = feed[inputName];
        var ef = ctx.Evidence.WriteNpy(file, x,
            $"counterexample for sample {s.Index} (label {s.Label}), a value of input '{inputName}'; replay with gate run");
        var heldFiles = new JsonObject();
        int k = 0;
        foreach (var (name, t) in feed.Where(kv => kv.Key != inputName).OrderBy(kv => kv.Key, StringComparer.Ordinal))
            heldFiles[name] = ctx.Evidence.WriteNpy($"cex-{s.Index:D6}.held{k++}.npy", t,
                $"input '{name}' of sample {s.Index}, held at the sample's value while '{inputName}' was perturbed; replay with gate run").Path;
        // Black-box search (square) may run on a model the built-in engine cannot compile; then only production outputs are recorded.
        float[]? builtin;
        try { builtin = ctx.Engine.Run(feed, [output])[output].ToFloatArray(); }
        catch (GateInputException) { builtin = null; }
        return new JsonObject
        {
            ["file"] = ef.Path,
            ["input"] = inputName,
            ["heldInputs"] = feed.Count > 1 ? heldFiles : null,
            ["linfNorm"] = new ThreatModel(PerturbationNorm.Linf, 0, 0, 0).Distance(s.Clean, s.Counterexample!),
            ["l2Norm"] = new ThreatModel(PerturbationNorm.L2, 0, 0, 0).Distance(s.Clean, s.Counterexample!),
            ["productionLogits"] = new JsonArray(s.ProductionLogits!.Select(v => (JsonNode)(double)v).ToArray()),
            ["builtinLogits"] = builtin is null ? null : new JsonArray(builtin.Select(v => (JsonNode)(double)v).ToArray()),
        };
    }

    /// <summary>The merged evidence: every sample's outcome, the counterexample records and both runtimes' outputs as arrays.</summary>
    private static void WriteEvidence(CheckContext ctx, List<JsonObject> rows, int mainAt, CheckResult r)
    {
        // Every sample's outcome, so "which samples were not reached" has an answer, not just a count.
        var outcomes = new JsonArray(rows.Select(u =>
        {
            var st = (u["states"] as JsonArray)![mainAt]!.GetValue<string>();
            return (JsonNode)new JsonObject
            {
                ["sampleIndex"] = u["sample"]!.DeepClone(), ["label"] = u["label"]!.DeepClone(),
                ["outcome"] = st, ["method"] = st == "counterexample" ? u["method"]?.DeepClone() : null,
            };
        }).ToArray());
        ctx.Evidence.WriteText("samples.json", outcomes.ToJsonString(new JsonSerializerOptions { WriteIndented = true }),
            "outcome per sample at the policy's ε: failed-unperturbed, counterexample, no-violation-found or undecided (budget)");
        var broken = rows.Where(u => u["counterexample"] is JsonObject).OrderBy(u => u["sample"]!.GetValue<long>()).ToList();
        if (broken.Count == 0) return;
        static float[] Floats(JsonNode? a) => (a as JsonArray)?.Select(v => (float)v!.GetValue<double>()).ToArray() ?? throw new InvalidDataException("a counterexample record has no logits");
        var production = broken.Select(u => Floats(u["counterexample"]!["productionLogits"])).ToList();
        int classes = production[0].Length;
        if (production.Any(z => z.Length != classes)) throw new InvalidDataException("counterexample records disagree on the number of classes");
        var builtin = broken.All(u => u["counterexample"]!["builtinLogits"] is JsonArray) ? broken.Select(u => Floats(u["counterexample"]!["builtinLogits"])).ToList() : null;
        var records = new JsonArray();
        for (int i = 0; i < broken.Count; i++)
        {
            var u = broken[i];
            var c = (JsonObject)u["counterexample"]!;
            var record = new JsonObject
            {
                ["sampleIndex"] = u["sample"]!.DeepClone(), ["file"] = c["file"]?.DeepClone(), ["input"] = c["input"]?.DeepClone(), ["label"] = u["label"]!.DeepClone(), ["method"] = u["method"]?.DeepClone(),
                ["foundAtEpsilon"] = u["foundAtEpsilon"]?.DeepClone(),
                ["linfNorm"] = c["linfNorm"]?.DeepClone(), ["l2Norm"] = c["l2Norm"]?.DeepClone(),
                ["productionPrediction"] = AttackGoal.ArgMax(production[i]), ["builtinPrediction"] = builtin is null ? null : AttackGoal.ArgMax(builtin[i]),
                ["productionLogits"] = c["productionLogits"]?.DeepClone(), ["builtinLogits"] = c["builtinLogits"]?.DeepClone(),
            };
            // A multi-input model's other inputs, at the sample's values: gate run replays the counterexample with all of them.
            if (c["heldInputs"] is JsonObject held) record["heldInputs"] = held.DeepClone();
            records.Add(record);
        }
        ctx.Evidence.WriteText("counterexamples.json", records.ToJsonString(new JsonSerializerOptions { WriteIndented = true }),
            "every confirmed counterexample: sample index, the input perturbed (and any held at the sample's values), method, perturbation norms, outputs of both runtimes");
        ctx.Evidence.WriteNpy("counterexamples-logits-production.npy", Tensor.FromFloats([broken.Count, classes], production.SelectMany(z => z).ToArray()),
            $"production-runtime outputs for the counterexamples, in sample-index order ({r.Runtime})");
        if (builtin is not null)
            ctx.Evidence.WriteNpy("counterexamples-logits-builtin.npy", Tensor.FromFloats([broken.Count, classes], builtin.SelectMany(z => z).ToArray()),
                "built-in engine outputs for the counterexamples, in sample-index order");
    }
}
