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
                planned.Add(new PlannedCheck(spec, impl, options) { NotRunReason = DatasetValidation.Shortfall(spec, datasets) });
            }
            catch (PolicyException e) { errors.AddRange(e.Errors); }
        }
        if (errors.Count > 0) throw new PolicyException(errors);
        var notes = new[] { Runtime.FixedBatch.Note(model) }.OfType<string>().ToList();
        return new CheckPlan { Policy = policy, Model = model, Checks = planned, Datasets = datasets, Notes = notes };
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
