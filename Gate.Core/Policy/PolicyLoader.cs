using Gate.Core.IO;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Gate.Core.Policy;

/// <summary>
/// Loads a policy: YAML → positioned node tree → JSON-Schema validation → semantic validation → typed records.
/// Every failure is a <see cref="PolicyException"/> listing all errors as <c>file:line:col: path: message</c>.
/// </summary>
public static partial class PolicyLoader
{
    /// <param name="dataOverrides">data overrides (<see cref="DataOverride"/>): key <c>NAME</c> → inputs path, <c>NAME.labels</c> → labels path.</param>
    public static DeploymentPolicy Load(string path, IReadOnlyDictionary<string, string>? dataOverrides = null)
    {
        using var fs = RegularFile.OpenRead(path, "policy file");
        if (fs.Length > PolicyYamlReader.MaxBytes)
            throw new PolicyException(new PolicyError(new(path, 1, 1), "", $"policy file is {fs.Length} bytes; the limit is {PolicyYamlReader.MaxBytes} (1 MiB)"));
        var bytes = RegularFile.ReadExactly(fs, 0, (int)fs.Length, "policy file", path);
        return Parse(bytes, path, dataOverrides);
    }

    public static DeploymentPolicy Parse(byte[] bytes, string path, IReadOnlyDictionary<string, string>? dataOverrides = null)
    {
        // The digest (below) is over the exact bytes, BOM included; the text the parser sees is the same either way.
        var node = PolicyYamlReader.Read(PolicyYamlReader.DecodeUtf8(bytes, path), path);
        if (node is not PolicyMapping root)
            throw PolicyException.At(node, $"a policy must be a mapping with apiVersion, kind, metadata and spec; got {PolicySchema.Describe(node)}");
        var errors = PolicySchema.V1.Validate(root);
        if (errors.Count > 0) throw new PolicyException(errors);
        var policy = Bind(root, path, dataOverrides, errors);
        if (errors.Count > 0) throw new PolicyException(errors);
        return policy with { Sha256 = Convert.ToHexStringLower(SHA256.HashData(bytes)), Bytes = bytes };
    }

    private static DeploymentPolicy Bind(PolicyMapping root, string path, IReadOnlyDictionary<string, string>? overrides, List<PolicyError> errors)
    {
        var meta = (PolicyMapping)root["metadata"]!;
        var spec = (PolicyMapping)root["spec"]!;
        var metadata = new PolicyMetadata(Str(meta["name"])!, Str(meta["owner"]), Str(meta["description"]),
            meta["release"] is PolicyScalar rel && rel.AsBool(),
            meta["labels"] is PolicyMapping lm ? lm.Entries.ToDictionary(e => e.Key.Value, e => ((PolicyScalar)e.Value).Value) : new Dictionary<string, string>());

        var model = (PolicyMapping)spec["model"]!;
        var inputs = new List<InputSpec>();
        foreach (var (k, v) in ((PolicyMapping)model["inputs"]!).Entries)
        {
            var m = (PolicyMapping)v;
            var shape = ((PolicySequence)m["shape"]!).Items.Select(i => ((PolicyScalar)i).AsLong()).ToArray();
            double lo = double.NegativeInfinity, hi = double.PositiveInfinity;
            if (m["range"] is PolicySequence r)
            {
                lo = ((PolicyScalar)r.Items[0]).AsDouble(); hi = ((PolicyScalar)r.Items[1]).AsDouble();
                if (!(lo < hi)) errors.Add(new PolicyError(r.Location, r.Path, $"range must be [min, max] with min < max, got [{lo}, {hi}]"));
            }
            inputs.Add(new InputSpec(k.Value, shape, lo, hi) { Preprocess = m["preprocess"] is PolicyMapping pm ? BindPreprocessing(pm, shape, lo, hi, errors) : null });
        }

        var sandboxNode = spec["sandbox"] as PolicyMapping;
        var limitsNode = sandboxNode?["limits"] as PolicyMapping;
        var limits = new ResourceLimits(
            limitsNode?["memory"] is PolicyScalar mem ? ParseMemory(mem, errors) : 2L << 30,
            limitsNode?["cpus"] is PolicyScalar cpus ? cpus.AsDouble() : 2,
            limitsNode?["timeout"] is PolicyScalar to ? ParseDuration(to) : TimeSpan.FromMinutes(10),
            limitsNode?["pids"] is PolicyScalar pids ? (int)pids.AsLong() : 256);
        var sandbox = new SandboxSpec(
            // The schema admits only the policy floors' names; absent means the strongest.
            IsolationLevels.TryParse(Str(sandboxNode?["isolation"]), out var isolation) ? isolation : IsolationLevel.Container,
            Str(sandboxNode?["gpu"]) switch { "optional" => GpuMode.Optional, "required" => GpuMode.Required, _ => GpuMode.None },
            limits);

        string policyDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var datasets = new Dictionary<string, DatasetSpec>();
        if (spec["datasets"] is PolicyMapping dsNode)
            foreach (var (k, v) in dsNode.Entries)
            {
                var m = (PolicyMapping)v;
                var pins = m["sha256"] as PolicyMapping;
                // One .npy per model input (inputs: {input_ids: ids.npy, ...}): in declared order; the first stands for
                // the dataset where one path is shown (review, lint), and the host composes them into one .npz.
                var inputFiles = m["inputs"] is PolicyMapping perInput
                    ? perInput.Entries.Select(e => new DatasetInputFile(e.Key.Value, Path.GetFullPath(Path.Combine(policyDir, Str(e.Value) ?? "")),
                        (pins?["inputs"] as PolicyMapping)?[e.Key.Value] is PolicyScalar fp ? fp.Value.ToLowerInvariant() : null)).ToList()
                    : null;
                var inputsPath = inputFiles is not null ? inputFiles[0].Path : Path.GetFullPath(Path.Combine(policyDir, Str(m["inputs"])!));
                if (inputFiles is not null && pins?["inputs"] is { } pinNode)
                {
                    // Per-input files are pinned per input: every file or none, by the same names.
                    if (pinNode is not PolicyMapping pinMap)
                        errors.Add(new PolicyError(pinNode.Location, pinNode.Path, "the dataset has one file per input: pin each (sha256.inputs: {INPUT: SHA256, ...}), not one digest"));
                    else
                    {
                        foreach (var f in inputFiles.Where(f => f.Pin is null))
                            errors.Add(new PolicyError(pinMap.Location, pinMap.Path, $"input '{f.Input}' ({Str(((PolicyMapping)m["inputs"]!)[f.Input])}) is not pinned: pin every input file, or a swapped one would go unnoticed"));
                        foreach (var (pk, _) in pinMap.Entries.Where(e => inputFiles.All(f => f.Input != e.Key.Value)))
                            errors.Add(new PolicyError(pk.Location, pinMap.Path + "." + pk.Value, $"sha256.inputs.{pk.Value} pins no file: spec.datasets.{k.Value}.inputs names no input '{pk.Value}'"));
                    }
                }
                else if (inputFiles is null && pins?["inputs"] is PolicyMapping wrongPins)
                    errors.Add(new PolicyError(wrongPins.Location, wrongPins.Path, "sha256.inputs is a mapping, but the dataset's inputs are one file: pin it with one digest"));
                // An image folder or manifest carries its own labels (class folders, a label column).
                bool images = inputFiles is null && Tensors.ImageDataset.IsImageSource(inputsPath);
                if (images && m["labels"] is { } extra)
                    errors.Add(new PolicyError(extra.Location, extra.Path, $"dataset inputs {Str(m["inputs"])} are images (a class-per-folder tree or a manifest), which carry their own labels: remove labels"));
                string? inputsPin = pins?["inputs"] is PolicyScalar ip ? ip.Value : null, labelsPin = Str(pins?["labels"]);
                // A half-pinned dataset is a hole: the unpinned file could be swapped under the pinned one.
                if (pins is not null && (m["labels"] is not null || images) && labelsPin is null)
                    errors.Add(new PolicyError(pins.Location, pins.Path, "the dataset has labels: pin them too (sha256.labels), or a swapped labels file would go unnoticed"));
                if (pins is not null && m["labels"] is null && !images && labelsPin is not null)
                    errors.Add(new PolicyError(pins["labels"]!.Location, pins["labels"]!.Path, "sha256.labels pins a labels file, but the dataset declares no labels"));
                datasets[k.Value] = new DatasetSpec(k.Value, inputsPath,
                    images ? inputsPath : m["labels"] is PolicyScalar l ? Path.GetFullPath(Path.Combine(policyDir, l.Value)) : null, k.Location)
                {
                    InputsPin = inputsPin?.ToLowerInvariant(), LabelsPin = labelsPin?.ToLowerInvariant(),
                    AllowOverride = m["allowOverride"] is PolicyScalar ao && ao.AsBool(),
                    InputFiles = inputFiles,
                };
            }
        if (overrides is not null)
            foreach (var o in overrides.Select(kv => DataOverride.Parse(kv.Key, kv.Value)))
            {
                // Whether a pinned dataset may be replaced is decided with the file's digest at plan time (DatasetValidation).
                string name = o.Dataset;
                if (!datasets.TryGetValue(name, out var existing))
                {
                    var at = (PolicyNode?)spec["datasets"] ?? spec;
                    errors.Add(new PolicyError(at.Location, at.Path, $"the policy defines no dataset '{name}' " +
                        (datasets.Count > 0 ? $"(datasets: {string.Join(", ", datasets.Keys)})" : "(spec.datasets defines none)")) { Override = o });
                    continue;
                }
                var full = Path.GetFullPath(o.Path);
                datasets[name] = o.Labels ? existing with { LabelsPath = full, LabelsOverride = o }
                    // Images bring their labels: an image source given as an override replaces both.
                    : Tensors.ImageDataset.IsImageSource(full) ? existing with { InputsPath = full, InputsOverride = o, LabelsPath = full, LabelsOverride = o }
                    // An override replaces every input (an .npz instead of per-input files: DatasetSpec.FilePerInput).
                    : existing with { InputsPath = full, InputsOverride = o };
            }

        var checks = new List<CheckSpec>();
        var ids = new Dictionary<string, SourceLocation>();
        foreach (var item in ((PolicySequence)spec["checks"]!).Items)
        {
            var c = (PolicyMapping)item;
            string id = Str(c["id"])!;
            if (ids.TryGetValue(id, out var first))
                errors.Add(new PolicyError(c["id"]!.Location, c["id"]!.Path, $"duplicate check id '{id}' (first used at line {first.Line})"));
            else ids[id] = c["id"]!.Location;
            // `dataset` and `require` are common to the check types that declare them; look only when present so
            // that a type without data never reads a key its schema does not have.
            string? ds = c.Keys.Contains("dataset") ? Str(c["dataset"]) : null;
            if (ds is not null && !datasets.ContainsKey(ds))
                errors.Add(new PolicyError(c["dataset"]!.Location, c["dataset"]!.Path,
                    $"unknown dataset '{ds}'" + (datasets.Count > 0 ? $" (defined: {string.Join(", ", datasets.Keys)})" : " (spec.datasets defines none)")));
            var require = new Dictionary<string, MetricBound>();
            if (c.Keys.Contains("require") && c["require"] is PolicyMapping req)
                foreach (var (k, v) in req.Entries)
                {
                    if (v is PolicyMapping b)
                    {
                        double? min = b["min"] is PolicyScalar mn ? mn.AsDouble() : null, max = b["max"] is PolicyScalar mx ? mx.AsDouble() : null;
                        if (min > max) errors.Add(new PolicyError(b.Location, b.Path, $"min ({min}) is greater than max ({max})"));
                        if (min is null && max is null) errors.Add(new PolicyError(b.Location, b.Path, "a requirement needs min and/or max"));
                        require[k.Value] = new MetricBound(min, max, b.Location, JudgedEstimate(c, k.Value, min, b.Keys.Contains("bound") ? Str(b["bound"]) : null));
                    }
                    else if (v is PolicyScalar s && k.Value is "min" or "max")
                    {
                        // Shorthand `require: { min: x }` names the check's primary metric (declared by its type).
                        var primary = CheckTypes.Declaration(Str(c["type"])!)?.PrimaryMetric ?? k.Value;
                        var prev = require.GetValueOrDefault(primary);
                        double? min = k.Value == "min" ? s.AsDouble() : prev?.Min, max = k.Value == "max" ? s.AsDouble() : prev?.Max;
                        require[primary] = new MetricBound(min, max, s.Location, JudgedEstimate(c, primary, min, null));
                    }
                }
            checks.Add(new CheckSpec(id, Str(c["type"])!, Str(c["enforcement"]) == "advisory" ? Enforcement.Advisory : Enforcement.Blocking,
                ds, Str(c["description"]), require, c));
        }

        foreach (var c in checks)
            if (CheckTypes.Declaration(c.Type)?.NeedsLabels == true && c.Dataset is { } d && datasets.TryGetValue(d, out var dsSpec) && dsSpec.LabelsPath is null)
                errors.Add(new PolicyError(c.Node["dataset"]!.Location, c.Node["dataset"]!.Path, $"check type {c.Type} needs labels, but dataset '{d}' has none"));

        var decisionNode = spec["decision"] as PolicyMapping;
        var decision = new DecisionSpec(Str(decisionNode?["onInconclusive"]) == "reject" ? InconclusiveHandling.Reject : InconclusiveHandling.Inconclusive);
        ulong seed = spec["seed"] is PolicyScalar seedNode ? (ulong)seedNode.AsLong() : 0;
        var pspec = new PolicySpec(new ModelSpec(Str(model["format"])!, inputs, Str(model["output"])), Str(spec["runtime"]) ?? "onnxruntime",
            sandbox, seed, datasets, checks, decision) { Engine = Str(spec["engine"]) ?? "auto" };
        return new DeploymentPolicy(Str(root["apiVersion"])!, Str(root["kind"])!, metadata, pspec)
        {
            SourcePath = path, Sha256 = "", Root = root, Bytes = [],
        };
    }

    /// <summary>
    /// Which value a requirement judges: the explicit <c>bound</c>; else, for a check that sets <c>confidence</c>,
    /// the pessimistic end of the interval (lower for a min, upper for a max: what <c>confidence</c> has always
    /// meant); else the point estimate.
    /// </summary>
    private static Estimate JudgedEstimate(PolicyMapping check, string metric, double? min, string? bound) => bound switch
    {
        "lower" => Estimate.Lower,
        "upper" => Estimate.Upper,
        "point" => Estimate.Point,
        _ when check.Keys.Contains("confidence") && MetricBound.IntervalMetrics.Contains(metric) => min is not null ? Estimate.Lower : Estimate.Upper,
        _ => Estimate.Point,
    };

    /// <summary>
    /// A model input's <c>preprocess</c> block (<see cref="Model.Preprocessing"/>). The decoded pixels are in [0, 1],
    /// so the input's range must be [0, 1]; per-channel lists need one value per channel of an NCHW input.
    /// </summary>
    private static Model.Preprocessing BindPreprocessing(PolicyMapping m, long[] shape, double lo, double hi, List<PolicyError> errors)
    {
        void Error(PolicyNode at, string message) => errors.Add(new PolicyError(at.Location, at.Path, message));
        static int[]? Ints(PolicyNode? n) => n is PolicySequence s ? s.Items.Select(i => (int)((PolicyScalar)i).AsLong()).ToArray() : null;
        static double[]? Doubles(PolicyNode? n) => n is PolicySequence s ? s.Items.Select(i => ((PolicyScalar)i).AsDouble()).ToArray() : null;
        if (lo != 0 || hi != 1)
            Error(m, $"preprocess works on decoded pixels in [0, 1] (ε is then a fraction of the 8-bit range): declare range: [0, 1] for this input " +
                     $"(it is [{lo.ToString(CultureInfo.InvariantCulture)}, {hi.ToString(CultureInfo.InvariantCulture)}]); scale, mean and std map pixels to what the network expects");
        if (shape.Length != 4)
            Error(m, $"preprocess needs an image input [N, C, H, W] (NCHW); this input has rank {shape.Length}");
        long channels = shape.Length == 4 ? shape[1] : -1;
        var prep = new Model.Preprocessing
        {
            Resize = Ints(m["resize"]), CenterCrop = Ints(m["centerCrop"]),
            Channels = Str(m["channels"]) ?? "rgb", Scale = m["scale"] is PolicyScalar sc ? sc.AsDouble() : 1,
            Mean = Doubles(m["mean"]), Std = Doubles(m["std"]),
        };
        if (channels != 3 && channels != -1)
            Error(m, $"preprocess decodes RGB images (3 channels); this input declares {channels} channels at axis 1");
        foreach (var (key, values) in new[] { ("mean", prep.Mean), ("std", prep.Std) })
            if (values is not null && values.Length != 3)
                Error(m[key]!, $"{key} needs one value per channel (3, in the network's channel order), got {values.Length}");
        if (prep.Std is { } sd && sd.Any(v => !(v > 0)))
            Error(m["std"]!, $"std values must be positive (got {sd.First(v => !(v > 0)).ToString(CultureInfo.InvariantCulture)}): the graph divides by them");
        if (!(prep.Scale > 0)) Error(m["scale"]!, "scale must be positive");
        // Without a crop, the resized size is the sample size; either must match the declared H, W.
        int[]? hw = prep.CenterCrop ?? (prep.Resize is [var rh, var rw] ? [rh, rw] : null);
        if (hw is [var h, var w] && shape.Length == 4 && ((shape[2] >= 0 && shape[2] != h) || (shape[3] >= 0 && shape[3] != w)))
            Error(m, $"preprocess yields {h}×{w} images but the input declares [{string.Join(", ", shape)}] (H, W at axes 2, 3)");
        return prep;
    }

    public static string? Str(PolicyNode? n) => n is PolicyScalar s && s.Kind != ScalarKind.Null ? s.Value : null;

    /// <summary>The longest duration a policy may give (a week): anything longer is a typo, and timers take at most ~24 days.</summary>
    public static readonly TimeSpan MaxDuration = TimeSpan.FromDays(7);

    /// <summary>Parses "500ms", "30s", "10m", "1.5h": positive and at most <see cref="MaxDuration"/>, or a positioned error.</summary>
    public static TimeSpan ParseDuration(PolicyScalar s)
    {
        var d = ParseDuration(s.Value) ?? throw PolicyException.At(s, DurationRx().IsMatch(s.Value)
            ? $"duration '{s.Value}' is longer than the limit of {MaxDuration.TotalHours:0}h"
            : $"'{s.Value}' is not a duration (e.g. 30s, 10m, 1h)");
        if (d <= TimeSpan.Zero) throw PolicyException.At(s, $"duration '{s.Value}' leaves no time at all; give a positive duration (e.g. 30s, 10m)");
        return d;
    }

    /// <summary>Null when <paramref name="text"/> is not a duration or is longer than <see cref="MaxDuration"/>.</summary>
    public static TimeSpan? ParseDuration(string text)
    {
        var m = DurationRx().Match(text);
        if (!m.Success) return null;
        double v = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        double ms = v * m.Groups[2].Value switch { "ms" => 1, "s" => 1e3, "m" => 60e3, _ => 3600e3 };
        return ms <= MaxDuration.TotalMilliseconds ? TimeSpan.FromMilliseconds(ms) : null;
    }

    /// <summary>The largest memory limit a policy may give (1 PiB, more than any host): a larger one is a typo, or overflows.</summary>
    public const long MaxMemoryBytes = 1L << 50;

    private static long ParseMemory(PolicyScalar s, List<PolicyError> errors)
    {
        var m = MemoryRx().Match(s.Value);
        long mult = m.Groups[2].Value switch { "Ki" => 1L << 10, "Mi" => 1L << 20, "Gi" => 1L << 30, "K" => 1000, "M" => 1_000_000, "G" => 1_000_000_000, _ => 1 };
        // The digits may not even fit in a long: compare as a decimal before multiplying.
        if (!decimal.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var v) || v > MaxMemoryBytes / (decimal)mult)
        {
            errors.Add(new PolicyError(s.Location, s.Path, $"memory limit {s.Value} is larger than the 1Pi limit"));
            return MaxMemoryBytes;
        }
        long bytes = (long)v * mult;
        if (bytes < 64L << 20) errors.Add(new PolicyError(s.Location, s.Path, $"memory limit {s.Value} is below the 64Mi the runner needs"));
        return bytes;
    }

    [GeneratedRegex(@"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$")] private static partial Regex DurationRx();
    [GeneratedRegex(@"^([0-9]+)(Ki|Mi|Gi|K|M|G)?$")] private static partial Regex MemoryRx();
}
