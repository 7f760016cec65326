using Gate.Core.Engine;
using Gate.Core.Evidence;
using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Runtime;
using Gate.Core.Tensors;

namespace Gate.Core.Checks;

/// <summary>
/// A dataset as loaded: the primary input's array (first axis = samples), optional integer labels and, for a model
/// with several inputs (an .npz with one array per input, e.g. input_ids, token_type_ids, attention_mask), every
/// input's array by name in <see cref="Feeds"/>; for a single-input model Feeds holds only the primary input.
/// </summary>
public sealed record Dataset(string Name, Tensor Inputs, long[]? Labels)
{
    public int Count => Inputs.Shape[0];
    public IReadOnlyDictionary<string, Tensor> Feeds { get; init; } = new Dictionary<string, Tensor>();

    /// <summary>Samples [start, start+count) of every input, as a model feed.</summary>
    public Dictionary<string, Tensor> Batch(int start, int count) =>
        Feeds.ToDictionary(kv => kv.Key, kv => kv.Value.SliceBatch(start, count), StringComparer.Ordinal);

    /// <summary>The chosen samples of every input, in each input's own element type.</summary>
    public Dictionary<string, Tensor> Select(IReadOnlyList<int> rows) =>
        Feeds.ToDictionary(kv => kv.Key, kv => MechanisticData.Rows(kv.Value, rows), StringComparer.Ordinal);
}

/// <summary>Everything a running check may use. Built by the executor (in the sandbox runner or on the host).</summary>
public sealed class CheckContext
{
    private readonly Dictionary<string, Dataset> _datasets;
    private readonly Lazy<(IWhiteBoxEngine Engine, WhiteBoxChoice Choice)> _engine;

    /// <param name="gpu">The run's GPU request, for the torch engine's device (the production runtime has its own).</param>
    public CheckContext(OnnxModel model, DeploymentPolicy policy, IInferenceSession? production, string? productionUnavailableReason,
        EvidenceWriter evidence, IProgress<ProgressUpdate>? progress = null, GpuRequest? gpu = null)
    {
        Model = model;
        Policy = policy;
        Production = production;
        ProductionUnavailableReason = productionUnavailableReason;
        Evidence = evidence;
        Progress = progress ?? new Progress<ProgressUpdate>();
        _engine = new(() =>
        {
            var (engine, choice) = WhiteBoxEngines.Choose(model, policy.Spec.Engine, gpu: gpu);
            choice = choice with { Gradient = Gate.Core.Engine.Ops.QuantizeLinearOp.StraightThroughNote(model) };
            // A batch fixed at 1 is fed one sample per pass, gradients included (the plan says so: FixedBatch.Note).
            return (FixedBatch.IsFixedAtOne(model) ? FixedBatch.SampleBySample(engine) : engine, choice);
        });
        _datasets = new();
    }

    private CheckContext(CheckContext other, EvidenceWriter evidence)
    {
        Model = other.Model; Policy = other.Policy; Production = other.Production;
        ProductionUnavailableReason = other.ProductionUnavailableReason; Progress = other.Progress;
        _engine = other._engine; _datasets = other._datasets;
        Evidence = evidence;
    }

    /// <summary>The same context (engine, datasets, runtime shared) writing evidence elsewhere.</summary>
    public CheckContext WithEvidence(EvidenceWriter evidence) => new(this, evidence);

    public OnnxModel Model { get; }
    public DeploymentPolicy Policy { get; }
    /// <summary>The white-box engine the policy's <c>engine</c> chose: gradients and activations. Chosen (and, for
    /// auto, measured) on first use; a torch engine that cannot run throws, which makes the check INCONCLUSIVE.</summary>
    public IWhiteBoxEngine Engine => _engine.Value.Engine;

    /// <summary>What <see cref="Engine"/> chose and why; null while no check has used it.</summary>
    public WhiteBoxChoice? EngineChoice => _engine.IsValueCreated ? _engine.Value.Choice : null;
    /// <summary>The production runtime (ONNX Runtime), or null with <see cref="ProductionUnavailableReason"/>.</summary>
    public IInferenceSession? Production { get; }
    public string? ProductionUnavailableReason { get; }
    public EvidenceWriter Evidence { get; }
    public IProgress<ProgressUpdate> Progress { get; }

    /// <summary>
    /// The production session, or an exception that the executor turns into INCONCLUSIVE with the reason.
    /// Checks whose evidence must hold in production call this instead of silently using the built-in engine.
    /// </summary>
    public IInferenceSession RequireProduction() =>
        Production ?? throw new GateComponentMissingException(ProductionUnavailableReason ?? "the production runtime is not available");

    /// <summary>Per-check seed: derived from the policy seed and the check id, so adding a check does not change others.</summary>
    public ulong SeedFor(string checkId)
    {
        ulong h = 1469598103934665603UL;
        foreach (char c in checkId) { h ^= c; h *= 1099511628211UL; }
        return Policy.Spec.Seed ^ h;
    }

    /// <summary>The primary input (first declared in the policy, else the model's first) with its value range.</summary>
    public InputSpec PrimaryInput
    {
        get
        {
            var declared = Policy.Spec.Model.Inputs.FirstOrDefault();
            var name = declared?.Name ?? Model.Graph.Inputs[0].Name;
            return declared ?? new InputSpec(name, [], double.NegativeInfinity, double.PositiveInfinity);
        }
    }

    /// <summary>Output used as class scores: the policy's spec.model.output, else the model's first output.</summary>
    public string PrimaryOutput => Policy.Spec.Model.Output ?? Model.Graph.Outputs[0].Name;

    public Dataset LoadDataset(string name)
    {
        lock (_datasets)
        {
            if (_datasets.TryGetValue(name, out var d)) return d;
            if (!Policy.Spec.Datasets.TryGetValue(name, out var spec)) throw new GateInputException($"dataset '{name}' is not defined in the policy");
            // An .npz holds one array per model input (validated at plan time: DatasetValidation); an .npy the primary input.
            var bytes = Npy.ReadBytes(spec.InputsPath);
            var arrays = Npy.IsNpz(bytes) ? Npy.ParseNpz(bytes, spec.InputsPath)
                : new Dictionary<string, Tensor> { [PrimaryInput.Name] = Npy.Parse(bytes, spec.InputsPath) };
            var feeds = arrays.ToDictionary(kv => kv.Key, kv => AsFed(kv.Key, kv.Value), StringComparer.Ordinal);
            if (!feeds.TryGetValue(PrimaryInput.Name, out var x))
                throw new GateInputException($"{spec.InputsPath}: no array named '{PrimaryInput.Name}' (the primary input); arrays: {string.Join(", ", feeds.Keys)}");
            if (x.Rank == 0) throw new GateInputException($"{spec.InputsPath}: dataset inputs must have a sample axis");
            long[]? y = null;
            if (spec.LabelsPath is not null)
            {
                var lt = Npy.Read(spec.LabelsPath);
                if (lt.Rank != 1 || lt.Shape[0] != x.Shape[0])
                    throw new GateInputException($"{spec.LabelsPath}: labels must be a vector of {x.Shape[0]} entries (one per input sample), got shape {lt.ShapeString}");
                y = lt.ToLongArray();
            }
            return _datasets[name] = new Dataset(name, x, y) { Feeds = feeds };
        }
    }

    /// <summary>
    /// Token ids for an integer input (an embedding lookup, an attention mask) stay integers, in the input's own
    /// type; every other array is float32, as the white-box engine and the attacks compute in it.
    /// </summary>
    private Tensor AsFed(string inputName, Tensor x)
    {
        var input = Model.Graph.Inputs.FirstOrDefault(i => i.Name == inputName);
        if (input is { ElementType: var it } && it is not (DType.Undefined or DType.Complex64 or DType.Complex128) && it.IsInteger() && x.Type.IsInteger())
            return x.Type == it ? x : Tensor.FromLongs(x.Shape, x.ToLongArray(), it);
        return x.Type == DType.Float32 ? x : Tensor.FromFloats(x.Shape, x.ToFloatArray());
    }
}
