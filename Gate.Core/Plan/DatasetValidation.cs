using System.Globalization;
using System.Security.Cryptography;
using Gate.Core.Decision;
using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Tensors;

namespace Gate.Core.Plan;

/// <summary>
/// The one place where dataset files are judged before anything runs: each file is read once (a regular file of
/// bounded size), digested, held to the policy's pin and override rule, and checked for sanity against the policy
/// and the model. Every problem is bad input naming the file and the first offending index; what passes becomes
/// the <see cref="DatasetRecord"/> that decision.json (the signed predicate) records.
/// </summary>
public static class DatasetValidation
{
    /// <summary>Validates every dataset that a check uses; errors are added to <paramref name="errors"/>.</summary>
    public static List<DatasetRecord> Validate(DeploymentPolicy policy, OnnxModel model, List<PolicyError> errors)
    {
        var records = new List<DatasetRecord>();
        foreach (var ds in policy.Spec.Datasets.Values)
        {
            var users = policy.Spec.Checks.Where(c => c.Dataset == ds.Name).ToList();
            if (users.Count == 0) continue;
            var before = errors.Count;
            // A problem with a file the caller gave (a data override) is about that override: it names it.
            void Error(string what, string message) => errors.Add(new PolicyError(ds.Location, $"spec.datasets.{ds.Name}.{what}", message)
                { Override = what == "labels" ? ds.LabelsOverride : ds.InputsOverride });

            ReadResult inputs, labels;
            if (ds.FilePerInput is { } files)
            {
                inputs = ReadPerInput(policy, model, ds, files, Error);
                labels = ds.LabelsPath is null ? default : ReadFile(ds, ds.LabelsPath, ds.LabelsPin, ds.LabelsOverridden, "labels", Error);
                if (inputs.Tensor is null) continue;
            }
            else if (ImageDataset.IsImageSource(ds.InputsPath))
                (inputs, labels) = ReadImages(policy, ds, Error);
            else
            {
                inputs = ReadFile(ds, ds.InputsPath, ds.InputsPin, ds.InputsOverridden, "inputs", Error, PrimaryInput(policy, model) is var (d, m) ? d?.Name ?? m?.Name ?? "" : "");
                labels = ds.LabelsPath is null ? default : ReadFile(ds, ds.LabelsPath, ds.LabelsPin, ds.LabelsOverridden, "labels", Error);
            }
            if (inputs.Tensor is null || (ds.LabelsPath is not null && labels.Tensor is null)) continue;

            if (ds.FilePerInput is not null) { } // judged per file as read (ReadPerInput)
            else if (inputs.Arrays is { } arrays) CheckArrays(policy, model, ds.InputsPath, arrays, m => Error("inputs", m));
            else CheckInputs(policy, model, ds.InputsPath, inputs.Tensor, m => Error("inputs", m));
            if (labels.Tensor is not null && errors.Count == before) // labels are judged against valid inputs only
                CheckLabels(policy, model, ds, inputs.Tensor, labels.Tensor, users.Any(c => CheckTypes.Declaration(c.Type)?.ClassLabels == true), m => Error("labels", m));
            if (errors.Count > before) continue;
            records.Add(new DatasetRecord(ds.Name, inputs.Tensor.Shape[0], inputs.Ref!, labels.Ref, ds.Pinned, users.Select(c => c.Id).ToList()));
        }
        return records;
    }

    /// <summary>
    /// Why a check cannot be judged on this data (fewer samples than its <c>samples</c> asks for, an index past the
    /// end), or null. Such a check is INCONCLUSIVE with this reason: never silently judged on fewer samples.
    /// </summary>
    public static string? Shortfall(CheckSpec check, IReadOnlyList<DatasetRecord> datasets)
    {
        if (check.Dataset is null || datasets.FirstOrDefault(d => d.Name == check.Dataset) is not { } ds) return null;
        string source = ds.Overridden ? $"{ds.Inputs.Path}, given as a data override" : ds.Inputs.Path;
        if (check.Node.Keys.Contains("samples") && check.Node["samples"] is PolicyScalar { IsNumber: true } s && s.AsLong() > ds.Samples)
            return $"the policy asks for {s.AsLong()} samples (samples at line {s.Location.Line}) but dataset '{ds.Name}' has only {ds.Samples} ({source}); " +
                   "the check was not run on fewer";
        if (check.Node.Keys.Contains("indices") && check.Node["indices"] is PolicySequence idx
            && idx.Items.OfType<PolicyScalar>().FirstOrDefault(i => i.IsNumber && i.AsLong() >= ds.Samples) is { } past)
            return $"indices: sample {past.AsLong()} (line {past.Location.Line}) is past the end of dataset '{ds.Name}' ({ds.Samples} samples, {source}); " +
                   "the check was not run on fewer";
        return null;
    }

    /// <summary>A read file: the primary input's array (what the record describes) and, for an .npz, every array by name.</summary>
    private readonly record struct ReadResult(Tensor? Tensor, DatasetFile? Ref, IReadOnlyDictionary<string, Tensor>? Arrays = null);

    /// <summary>
    /// An image folder or manifest, decoded here on the host with the input's declared geometry into pixels and
    /// labels; each becomes .npy bytes whose digest is recorded (and pinned) like an array file's, and is written to
    /// a private file the sandbox is given instead of the images.
    /// </summary>
    private static (ReadResult Inputs, ReadResult Labels) ReadImages(DeploymentPolicy policy, DatasetSpec ds, Action<string, string> error)
    {
        DecodedImages decoded;
        try { decoded = ImageDataset.Read(ds.InputsPath, policy.Spec.Model.Inputs.FirstOrDefault()?.Preprocess?.Geometry); }
        catch (GateInputException e) { error("inputs", e.Message); return default; }
        var inputs = Digested(ds, ds.InputsPath, Npy.ToBytes(decoded.Inputs), ds.InputsPin, ds.InputsOverridden, "inputs", error, decoded);
        var labels = Digested(ds, ds.InputsPath, Npy.ToBytes(decoded.Labels), ds.LabelsPin, ds.LabelsOverridden, "labels", error, decoded);
        return (inputs, labels);
    }

    /// <summary>
    /// One .npy per model input: each file read, pinned and judged against the input it names (dtype, shape, range,
    /// sample count), then the files composed, byte for byte, into one .npz that the sandbox reads like any .npz.
    /// The record keeps every file's own digest (<see cref="DatasetFile.ComposedFrom"/>).
    /// </summary>
    private static ReadResult ReadPerInput(DeploymentPolicy policy, OnnxModel model, DatasetSpec ds, IReadOnlyList<DatasetInputFile> files, Action<string, string> error)
    {
        var graphInputs = model.Graph.Inputs.Where(i => !model.Graph.Initializers.ContainsKey(i.Name)).ToList();
        bool failed = false;
        void Fail(string input, string message) { failed = true; error($"inputs.{input}", message); }
        foreach (var f in files.Where(f => graphInputs.All(i => i.Name != f.Input)))
            Fail(f.Input, $"{f.Path}: input '{f.Input}' names no input of the model (inputs: {string.Join(", ", graphInputs.Select(i => i.Name))}); name each file after the input it feeds");
        foreach (var i in graphInputs.Where(i => files.All(f => f.Input != i.Name)))
            error("inputs", $"no file for model input '{i.Name}' ({i.ElementType.OnnxName()}{i.ShapeString}): one file per input names every input of the model (add {i.Name}: FILE.npy under inputs)");
        if (failed || graphInputs.Any(i => files.All(f => f.Input != i.Name))) return default;

        var read = new List<(DatasetInputFile File, byte[] Bytes, Tensor Array, DatasetFile Ref)>();
        foreach (var f in files)
        {
            byte[] bytes;
            Tensor x;
            try
            {
                bytes = Npy.ReadBytes(f.Path);
                if (Npy.IsNpz(bytes)) throw new GateInputException($"{f.Path}: an .npz archive where input '{f.Input}' needs one .npy array; give the .npz as the dataset's inputs instead");
                x = Npy.Parse(bytes, f.Path);
            }
            catch (GateInputException e) { Fail(f.Input, e.Message); continue; }
            var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
            if (f.Pin is not null && sha != f.Pin)
            { Fail(f.Input, $"{f.Path}: sha256 {sha} does not match the digest the policy pins for input '{f.Input}' (sha256.inputs.{f.Input}: {f.Pin}); the file is not the approved data"); continue; }
            CheckInputs(policy, model, $"{f.Path} (input '{f.Input}')", x, m => Fail(f.Input, m), f.Input);
            read.Add((f, bytes, x, new DatasetFile(f.Path, sha, bytes.LongLength, x.Type.OnnxName(), x.Shape, false) { Input = f.Input }));
        }
        if (failed) return default;
        var first = read[0];
        foreach (var r in read.Skip(1).Where(r => r.Array.Shape[0] != first.Array.Shape[0]))
        {
            Fail(r.File.Input, $"{r.File.Path}: {r.Array.Shape[0]} samples for input '{r.File.Input}' (shape {r.Array.ShapeString}) but {first.File.Path} has {first.Array.Shape[0]} for '{first.File.Input}'; every input needs one entry per sample");
            return default;
        }
        var npz = Npy.ComposeNpz(read.Select(r => (r.File.Input, r.Bytes)));
        if (npz.LongLength > Npy.MaxFileBytes)
        { error("inputs", $"the {read.Count} input files together are {npz.LongLength} bytes, over the {Npy.MaxFileBytes}-byte limit of one dataset"); return default; }
        var composedSha = Convert.ToHexStringLower(SHA256.HashData(npz));
        // The dataset feeds the primary input first: the record describes that array, as for an .npz.
        var primaryName = PrimaryInput(policy, model) is var (d, m) ? d?.Name ?? m?.Name : null;
        var primary = read.FirstOrDefault(r => r.File.Input == primaryName) is { Array: not null } p ? p : first;
        return new ReadResult(primary.Array, new DatasetFile(primary.File.Path, composedSha, npz.LongLength, primary.Array.Type.OnnxName(), primary.Array.Shape, false)
        {
            ComposedFrom = read.Select(r => r.Ref).ToList(),
            Materialized = DecodedFiles.Write(npz, composedSha, "inputs"),
        }, read.ToDictionary(r => r.File.Input, r => r.Array, StringComparer.Ordinal));
    }

    private static ReadResult ReadFile(DatasetSpec ds, string path, string? pin, bool overridden, string what, Action<string, string> error, string primaryInput = "")
    {
        byte[] bytes;
        try { bytes = Npy.ReadBytes(path); }
        catch (GateInputException e) { error(what, e.Message); return default; }
        return Digested(ds, path, bytes, pin, overridden, what, error, null, primaryInput);
    }

    private static ReadResult Digested(DatasetSpec ds, string path, byte[] bytes, string? pin, bool overridden, string what, Action<string, string> error, DecodedImages? images,
        string primaryInput = "")
    {
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        // A pinned dataset is exactly the approved bytes, unless the policy lets a data override replace it (then it is flagged).
        if (pin is not null || (overridden && ds.Pinned))
        {
            if (overridden && !ds.AllowOverride && sha != pin)
            {
                error(what, $"dataset '{ds.Name}' is pinned by sha256 and the policy does not allow overrides " +
                            $"(allowOverride: true); the file's sha256 is {sha}, the policy pins {pin ?? "no " + what + " file"}");
                return default;
            }
            if (!overridden && sha != pin)
            {
                error(what, images is null
                    ? $"{path}: sha256 {sha} does not match the digest the policy pins (sha256.{what}: {pin}); the file is not the approved data"
                    : $"{path}: the decoded {what} have sha256 {sha}, not the digest the policy pins (sha256.{what}: {pin}); these images are not the approved data");
                return default;
            }
        }
        Tensor t;
        Dictionary<string, Tensor>? arrays = null;
        try
        {
            // An .npz: one array per model input, named after it (BERT-style input_ids, token_type_ids, attention_mask).
            if (images is null && Npy.IsNpz(bytes))
            {
                arrays = Npy.ParseNpz(bytes, path);
                t = arrays.TryGetValue(primaryInput, out var primary) ? primary
                    : throw new GateInputException($"{path}: no array named '{primaryInput}' (the model input the dataset feeds first); " +
                                                   $"the archive holds {string.Join(", ", arrays.Keys.Select(k => $"'{k}'"))}: name each array after the model input it feeds");
            }
            else t = images is null ? Npy.Parse(bytes, path) : what == "labels" ? images.Labels : images.Inputs;
        }
        catch (GateInputException e) { error(what, e.Message); return default; }
        return new ReadResult(t, new DatasetFile(path, sha, bytes.LongLength, t.Type.OnnxName(), t.Shape, overridden)
        {
            DecodedFrom = images?.Source,
            Materialized = images is null ? null : DecodedFiles.Write(bytes, sha, what),
        }, arrays);
    }

    /// <summary>The input a dataset feeds: the policy's first declared input, else the model's first graph input.</summary>
    private static (InputSpec? Declared, ValueInfo? Model) PrimaryInput(DeploymentPolicy policy, OnnxModel model)
    {
        var declared = policy.Spec.Model.Inputs.FirstOrDefault();
        var graphInputs = model.Graph.Inputs.Where(i => !model.Graph.Initializers.ContainsKey(i.Name)).ToList();
        var vi = declared is null ? graphInputs.FirstOrDefault() : graphInputs.FirstOrDefault(i => i.Name == declared.Name);
        return (declared, vi);
    }

    /// <summary>
    /// An .npz feeds every data input of the model, each array named after its input and holding the same samples;
    /// each is judged as a single-input dataset would be against its own input (dtype, shape, declared range).
    /// </summary>
    private static void CheckArrays(DeploymentPolicy policy, OnnxModel model, string path, IReadOnlyDictionary<string, Tensor> arrays, Action<string> error)
    {
        var graphInputs = model.Graph.Inputs.Where(i => !model.Graph.Initializers.ContainsKey(i.Name)).ToList();
        var unknown = arrays.Keys.Where(k => graphInputs.All(i => i.Name != k)).ToList();
        if (unknown.Count > 0)
        { error($"{path}: array {string.Join(", ", unknown.Select(k => $"'{k}'"))} names no input of the model (inputs: {string.Join(", ", graphInputs.Select(i => i.Name))}); name each array after the input it feeds"); return; }
        var missing = graphInputs.Where(i => !arrays.ContainsKey(i.Name)).ToList();
        if (missing.Count > 0)
        { error($"{path}: no array for model input {string.Join(", ", missing.Select(i => $"'{i.Name}' ({i.ElementType.OnnxName()}{i.ShapeString})"))}; an .npz dataset feeds every input"); return; }
        var (primary, first) = (arrays.First().Key, arrays.First().Value);
        foreach (var (name, x) in arrays)
        {
            if (x.Rank > 0 && first.Rank > 0 && x.Shape[0] != first.Shape[0])
            { error($"{path}: array '{name}' has {x.Shape[0]} samples (shape {x.ShapeString}) but '{primary}' has {first.Shape[0]}; every input needs one entry per sample"); return; }
            bool failed = false;
            CheckInputs(policy, model, $"{path}:{name}", x, m => { failed = true; error(m); }, name);
            if (failed) return;
        }
    }

    private static void CheckInputs(DeploymentPolicy policy, OnnxModel model, string path, Tensor x, Action<string> error, string? inputName = null)
    {
        if (x.Rank == 0) { error($"{path}: a scalar; dataset inputs need a sample axis (shape [samples, ...])"); return; }
        if (x.Shape[0] == 0) { error($"{path}: 0 samples (shape {x.ShapeString}); a dataset needs at least one"); return; }
        var (declared, vi) = inputName is null ? PrimaryInput(policy, model)
            : (policy.Spec.Model.Inputs.FirstOrDefault(i => i.Name == inputName), model.Graph.Inputs.FirstOrDefault(i => i.Name == inputName));
        inputName = declared?.Name ?? vi?.Name ?? "?";

        bool floatDeclared = declared is not null && DeclaredDType(policy, declared.Name) == "float32" || vi?.ElementType.IsFloating() == true;
        if (floatDeclared && !x.Type.IsFloating())
        {
            error($"{path}: {x.Type.OnnxName()} array where input '{inputName}' is declared float; save the inputs as float32 (scaled to the declared range), not raw integers");
            return;
        }

        if (vi is { ElementType: not (DType.Undefined or DType.Complex64 or DType.Complex128) } && vi.ElementType.IsInteger() && x.Type.IsFloating())
        {
            error($"{path}: {x.Type.OnnxName()} array where model input '{inputName}' is {vi.ElementType.OnnxName()} (token ids or indices); save the inputs as integers");
            return;
        }

        // Each sample must have the shape the policy declares (else the model's), batch axis aside.
        long?[]? expected = declared is not null ? declared.Shape.Select(d => d >= 0 ? d : (long?)null).ToArray()
            : vi?.Shape?.Select(d => d.Value).ToArray();
        if (expected is not null)
        {
            string want = "[" + string.Join(",", expected.Select(d => d?.ToString(CultureInfo.InvariantCulture) ?? "-1")) + "]";
            string whose = declared is not null ? $"input '{inputName}' in spec.model.inputs" : $"model input '{inputName}'";
            if (x.Rank != expected.Length) { error($"{path}: shape {x.ShapeString} does not match {want} declared for {whose} (rank {x.Rank}, expected {expected.Length})"); return; }
            for (int a = 1; a < expected.Length; a++)
                if (expected[a] is long d && d != x.Shape[a])
                { error($"{path}: shape {x.ShapeString} does not match {want} declared for {whose} (axis {a} is {x.Shape[a]}, expected {d})"); return; }
        }

        double lo = declared?.Min ?? double.NegativeInfinity, hi = declared?.Max ?? double.PositiveInfinity;
        int perSample = x.Length / x.Shape[0];
        for (int k = 0; k < x.Length; k++)
        {
            double v = x.GetDouble(k);
            string? problem = double.IsNaN(v) ? "NaN" : double.IsInfinity(v) ? (v > 0 ? "+Inf" : "-Inf")
                : v < lo || v > hi ? $"{Num(v)} is outside the range [{Num(lo)}, {Num(hi)}] declared for input '{inputName}' in spec.model.inputs" : null;
            if (problem is null) continue;
            error($"{path}: {Where(k, x.Shape, perSample)}: {problem}");
            return;
        }
    }

    private static void CheckLabels(DeploymentPolicy policy, OnnxModel model, DatasetSpec ds, Tensor x, Tensor y, bool classLabels, Action<string> error)
    {
        string path = ds.LabelsPath!;
        if (y.Rank != 1)
        { error($"{path}: shape {y.ShapeString}; labels must be a vector of class indices, one per input sample ({x.Shape[0]} in {ds.InputsPath})"); return; }
        if (y.Shape[0] != x.Shape[0])
        { error($"{path}: {y.Shape[0]} labels for {x.Shape[0]} input samples in {ds.InputsPath}; there must be exactly one label per sample"); return; }

        // Labels index the model's output when the checks compare them with its prediction.
        string outputName = policy.Spec.Model.Output ?? model.Graph.Outputs[0].Name;
        var output = model.Graph.Outputs.FirstOrDefault(o => o.Name == outputName);
        long? classes = classLabels && output?.Shape is { Length: > 0 } os ? os[^1].Value : null;
        for (int k = 0; k < y.Length; k++)
        {
            double v = y.GetDouble(k);
            string? problem = !double.IsFinite(v) || v != Math.Floor(v) ? $"{Num(v)} is not a whole number; labels must be class indices"
                : v < 0 ? $"{Num(v)} is negative; labels must be class indices in [0, classes)"
                : classes is long c && v >= c ? $"{Num(v)} is outside [0, {c}): model output '{outputName}' is {output!.ShapeString}, {c} classes wide"
                : null;
            if (problem is null) continue;
            error($"{path}: sample {k}: label {problem}");
            return;
        }
    }

    private static string? DeclaredDType(DeploymentPolicy policy, string input) =>
        ((((policy.Root["spec"] as PolicyMapping)?["model"] as PolicyMapping)?["inputs"] as PolicyMapping)?[input] as PolicyMapping)?["dtype"] is PolicyScalar s ? s.Value : null;

    /// <summary>"sample 12, element [0,3,4] (flat index 820)": where flat index k of a [samples, ...] array lies.</summary>
    private static string Where(int k, int[] shape, int perSample)
    {
        int sample = k / perSample, rest = k % perSample;
        if (shape.Length == 1) return $"sample {sample}";
        var idx = new int[shape.Length - 1];
        for (int a = shape.Length - 1; a >= 1; a--) { idx[a - 1] = rest % shape[a]; rest /= shape[a]; }
        return $"sample {sample}, element [{string.Join(",", idx)}] (flat index {k})";
    }

    /// <summary>
    /// Decoded datasets as .npy files for the sandbox staging to copy (and re-hash against the recorded digest): one
    /// private folder per process (0700), named by digest, removed when the process exits.
    /// </summary>
    private static class DecodedFiles
    {
        private static readonly Lazy<string> Folder = new(() =>
        {
            var dir = Directory.CreateTempSubdirectory("gate-decoded-").FullName;
            AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { } };
            return dir;
        });

        public static string Write(byte[] bytes, string sha256, string what)
        {
            var path = Path.Combine(Folder.Value, $"{sha256}.{what}.npy");
            if (!File.Exists(path))
            {
                var tmp = path + $".{Environment.CurrentManagedThreadId}.tmp";
                File.WriteAllBytes(tmp, bytes);
                File.Move(tmp, path, overwrite: true);
            }
            return path;
        }
    }

    private static string Num(double v) => v.ToString("G9", CultureInfo.InvariantCulture);
}
