using Gate.Core.Checks;
using Gate.Core.Policy;

namespace Gate.Core.Plan;

/// <summary>
/// The files checks read besides the model, from the bound plan: the datasets they use (after data overrides
/// overrides), the files their bound options declare (<see cref="IReadsInputFiles"/>; read at bind time, on the host,
/// so their content travels in the bound options and the files never enter a sandbox), and the model's external-data
/// files (locations relative to the model's folder). Nothing is found by looking at what policy strings happen to name.
/// </summary>
public sealed record SandboxInputs(IReadOnlyList<DatasetSpec> Datasets, IReadOnlyList<string> Files, IReadOnlyList<string> ModelExternalData)
{
    public static readonly SandboxInputs None = new([], [], []);
}
