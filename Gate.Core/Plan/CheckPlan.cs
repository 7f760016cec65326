using Gate.Core.Checks;
using Gate.Core.Decision;
using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Tensors;

namespace Gate.Core.Plan;

/// <summary>A check ready to run: its spec, implementation (null when this build cannot execute the type) and bound options.</summary>
public sealed record PlannedCheck(CheckSpec Spec, ICheck? Implementation, object? Options)
{
    public CheckPlacement Placement => Implementation?.Placement ?? CheckPlacement.Host;
    public bool Supported => Implementation is not null;
    /// <summary>Why the check is INCONCLUSIVE without running (e.g. the data has fewer samples than it asks for), or null.</summary>
    public string? NotRunReason { get; init; }
    /// <summary>The defaulted budgets the sandbox scaled to fit its timeout (<see cref="BudgetScaling"/>), recorded in the result's <c>details.scaledDefaults</c>.</summary>
    public IReadOnlyList<Gate.Core.Decision.ScaledDefault> ScaledDefaults { get; init; } = [];
    /// <summary>Supported and nothing stands in its way: the check is executed.</summary>
    public bool Runnable => Supported && NotRunReason is null;
}

/// <summary>
/// The policy turned into work: every check bound and validated, every dataset file checked, before anything
/// executes. Errors here are bad input (exit 3); nothing has run yet.
/// </summary>
public sealed class CheckPlan
{
    public required DeploymentPolicy Policy { get; init; }
    public required OnnxModel Model { get; init; }
    public required IReadOnlyList<PlannedCheck> Checks { get; init; }
    /// <summary>The datasets the checks use, validated and digested: what decision.json records as evaluated.</summary>
    public required IReadOnlyList<DatasetRecord> Datasets { get; init; }
    /// <summary>How the checks will treat this model where it departs from the usual (a batch fixed at 1), for the plan's reader.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    public IEnumerable<PlannedCheck> HostChecks => Checks.Where(c => c.Runnable && c.Placement == CheckPlacement.Host);
    public IEnumerable<PlannedCheck> SandboxChecks => Checks.Where(c => c.Runnable && c.Placement == CheckPlacement.Sandbox);

    /// <summary>What these checks read when they run (datasets, declared files, the model's external data): all a sandbox is given.</summary>
    public SandboxInputs InputsOf(IEnumerable<PlannedCheck> checks)
    {
        var list = checks.ToList();
        var datasets = list.Select(c => c.Spec.Dataset).OfType<string>().Distinct(StringComparer.Ordinal)
            .Select(name => Policy.Spec.Datasets[name]).ToList();
        var files = list.SelectMany(c => (c.Options as IReadsInputFiles)?.InputFiles ?? []).Distinct(StringComparer.Ordinal).ToList();
        return new SandboxInputs(datasets, files, Model.Graph.ExternalData.Values.Distinct(StringComparer.Ordinal).ToList());
    }

    public static CheckPlan Create(DeploymentPolicy policy, OnnxModel model)
    {
        var errors = new List<PolicyError>();
        ValidateModelAgainstPolicy(policy, model, errors);
        var datasets = DatasetValidation.Validate(policy, model, errors);
        var planned = new List<PlannedCheck>();
        foreach (var spec in policy.Spec.Checks)
        {
            var impl = CheckRegistry.Find(spec.Type);
            if (impl is null) { planned.Add(new PlannedCheck(spec, null, null)); continue; }
            try
            {
                var options = impl.Bind(spec, policy);
                (impl as IRefusesModels)?.Refuse(spec, options, policy, model, errors);
                RefuseNonTensorOutputs(spec, impl, policy, model, errors);
                planned.Add(new PlannedCheck(spec, impl, options) { NotRunReason = DatasetValidation.Shortfall(spec, datasets) });
            }
            catch (PolicyException e) { errors.AddRange(e.Errors); }
        }
        if (errors.Count > 0) throw new PolicyException(errors);
        var notes = new[] { Runtime.FixedBatch.Note(model) }.OfType<string>().ToList();
        return new CheckPlan { Policy = policy, Model = model, Checks = planned, Datasets = datasets, Notes = notes };
    }

    /// <summary>
    /// A model with a sequence or map output (ai.onnx.ml ZipMap) runs only on ONNX Runtime: the built-in engine, and
    /// so every white-box check, reads tensors only. Refused here, naming the output, rather than INCONCLUSIVE later.
    /// Checks that run nothing (host placement) or read outputs through ONNX Runtime only are unaffected.
    /// </summary>
    private static void RefuseNonTensorOutputs(CheckSpec spec, ICheck impl, DeploymentPolicy policy, OnnxModel model, List<PolicyError> errors)
    {
        var nonTensor = model.Graph.Outputs.FirstOrDefault(o => o.Kind != "tensor");
        if (nonTensor is null || impl.Placement == CheckPlacement.Host) return;
        bool ortOnly = impl.Declaration.ReadsNonTensorOutputs;
        PolicyNode typeNode = spec.Node["type"] ?? spec.Node;
        if (ortOnly && policy.Spec.Runtime == "onnxruntime")
        {
            var judged = policy.Spec.Model.Output ?? model.Graph.Outputs[0].Name;
            var info = model.Graph.Outputs.FirstOrDefault(o => o.Name == judged);
            if (info?.ElementType == DType.String || info?.Type is { Kind: "sequence", Element: { Kind: "map", KeyType: DType.String } })
                errors.Add(new PolicyError(typeNode.Location, typeNode.Path, $"check '{spec.Id}': the model's output '{judged}' holds string class labels" +
                    $"{(info.Kind == "tensor" ? "" : $" ({info.Type}, ai.onnx.ml ZipMap's classlabels_strings)")}, " +
                    "which cannot be matched to the dataset's integer labels; name an integer label or probability output in spec.model.output"));
            // Of the non-tensor outputs the checks read ZipMap's int64→float maps only (as [samples, classes]).
            else if (info is { Type: { } t } && t.Kind != "tensor" && !t.IsClassProbabilityMaps)
                errors.Add(new PolicyError(typeNode.Location, typeNode.Path, $"check '{spec.Id}': the model's output '{judged}' is a {t}; the checks read tensors and " +
                    "sequences of int64→float maps (ai.onnx.ml ZipMap with integer class labels); name such an output in spec.model.output"));
            return;
        }
        var able = string.Join(", ", CheckRegistry.Types.Where(t => CheckRegistry.Find(t)!.Declaration.ReadsNonTensorOutputs));
        errors.Add(new PolicyError(typeNode.Location, typeNode.Path, ortOnly
            ? $"check '{spec.Id}': the model's output '{nonTensor.Name}' is a {nonTensor.Kind}, which only ONNX Runtime reads; set spec.runtime: onnxruntime"
            : $"check '{spec.Id}' ({spec.Type}) needs the built-in engine, which reads tensors only, and the model's output '{nonTensor.Name}' is a {nonTensor.Kind} " +
              $"(e.g. ai.onnx.ml ZipMap's class probabilities); checks that can use this model on ONNX Runtime: {able}"));
    }

    /// <summary>The policy's declared inputs must exist in the model with compatible ranks and fixed dimensions.</summary>
    private static void ValidateModelAgainstPolicy(DeploymentPolicy policy, OnnxModel model, List<PolicyError> errors)
    {
        var inputsNode = (PolicyMapping)((PolicyMapping)((PolicyMapping)policy.Root["spec"]!)["model"]!)["inputs"]!;
        foreach (var input in policy.Spec.Model.Inputs)
        {
            var node = inputsNode[input.Name]!;
            var vi = model.Graph.Inputs.FirstOrDefault(i => i.Name == input.Name);
            if (vi is null)
            {
                errors.Add(new PolicyError(node.Location, node.Path, $"the model has no input '{input.Name}' (model inputs: {string.Join(", ", model.Graph.Inputs.Select(i => i.Name))})"));
                continue;
            }
            if (vi.Shape is null) continue;
            if (vi.Shape.Length != input.Shape.Length)
            {
                errors.Add(new PolicyError(node.Location, node.Path, $"policy declares rank {input.Shape.Length} but model input '{vi.Name}' is {vi.ShapeString}"));
                continue;
            }
            for (int i = 0; i < input.Shape.Length; i++)
                if (input.Shape[i] >= 0 && vi.Shape[i].Value is long d && d != input.Shape[i])
                    errors.Add(new PolicyError(node.Location, node.Path, $"policy declares dimension {input.Shape[i]} at axis {i} but model input '{vi.Name}' is {vi.ShapeString}"));
        }
        if (policy.Spec.Model.Output is { } o && !model.Graph.Outputs.Any(x => x.Name == o))
        {
            var node = ((PolicyMapping)((PolicyMapping)policy.Root["spec"]!)["model"]!)["output"]!;
            errors.Add(new PolicyError(node.Location, node.Path, $"the model has no output '{o}' (outputs: {string.Join(", ", model.Graph.Outputs.Select(x => x.Name))})"));
        }
    }
}
