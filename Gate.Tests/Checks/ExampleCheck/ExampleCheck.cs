using Gate.Core.Checks;
using Gate.Core.Checks.Adversarial;
using Gate.Core.Evidence;
using Gate.Core.Policy;

namespace Gate.Tests.Checks.ExampleCheck;

/// <summary>
/// A check type that exists only in this folder: its declaration, binder and execution. Nothing else in Gate knows
/// it, yet the schema, the loader, lint, review and diff handle it (<see cref="AddingACheckTypeTests"/>): the proof
/// that adding a check type is one folder.
/// </summary>
public sealed record ExampleOptions(string Dataset, int Samples, double Tolerance, ThreatModel? Perturbation);

public sealed class ExampleCheck : Check<ExampleOptions>
{
    public static readonly CheckDeclaration Declared = new()
    {
        Type = "example-mean",
        Purpose = "Checks that the mean of the model's first output stays within a tolerance of zero on the dataset.",
        Why = "It is a test fixture: it shows that a check type declared in one place is understood everywhere.",
        UsesDataset = true, NeedsDataset = true,
        Options =
        [
            Opt.Samples("Samples whose outputs are averaged.", defaultCap: 32),
            Opt.Number("tolerance", "Largest allowed absolute mean.", exclusiveMin: 0) with { Default = 0.5, Strength = Strength.LowerIsStronger, Unit = "output units" },
            ThreatOptions.Threat("perturbation", "Inputs around each sample whose outputs count too.", withInput: false),
        ],
        Metrics = [new("meanOutput", "mean of the first output", MetricRange.Any)],
    };

    public override CheckDeclaration Declaration => Declared;
    public override CheckPlacement Placement => CheckPlacement.Host;

    public override ExampleOptions BindOptions(CheckSpec spec, DeploymentPolicy policy) =>
        new(spec.Dataset!, Declaration.Value(spec.Node, "samples").Int!.Value, Declaration.Value(spec.Node, "tolerance").Number!.Value,
            spec.Node["perturbation"] is PolicyMapping m ? ThreatOptions.Bind(m, policy) : null);

    public override Task<CheckResult> RunAsync(CheckContext context, CheckSpec spec, ExampleOptions options, CancellationToken ct)
    {
        var r = NewResult(spec);
        r.Verdict = Verdict.Pass;
        r.Summary = $"example check bound {options.Samples} samples, tolerance {options.Tolerance}";
        return Task.FromResult(r);
    }
}
