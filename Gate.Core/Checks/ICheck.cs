using Gate.Core.Evidence;
using Gate.Core.Policy;

namespace Gate.Core.Checks;

/// <summary>Where a check runs: on the host (reads the model, never executes it) or inside the sandbox.</summary>
public enum CheckPlacement { Host, Sandbox }

/// <summary>
/// One check type (e.g. "adversarial"): its declaration (options, defaults, metrics, meaning: <see cref="CheckDeclaration"/>),
/// its binder and its execution. Implementations are stateless and found by reflection (<see cref="CheckTypes"/>),
/// so a new check type is one new folder.
/// </summary>
public interface ICheck : ICheckType
{
    /// <summary>The policy's <c>type:</c> value.</summary>
    string Type => Declaration.Type;
    CheckPlacement Placement { get; }
    /// <summary>Plain-language description for reviewers: what the check tests.</summary>
    string Purpose => Declaration.Purpose;

    /// <summary>
    /// Binds and validates the type-specific options before anything runs. Throws <see cref="PolicyException"/>
    /// (file:line:col) for options the schema cannot express (e.g. a layer name that must exist).
    /// </summary>
    object Bind(CheckSpec spec, DeploymentPolicy policy);

    /// <summary>The type <see cref="Bind"/> returns: what a bound plan's options are read back as across the sandbox boundary.</summary>
    Type OptionsType => typeof(object);

    /// <summary>Runs the check. Must not throw for model behaviour; faults are caught by the caller and become INCONCLUSIVE.</summary>
    Task<CheckResult> RunAsync(CheckContext context, CheckSpec spec, object options, CancellationToken cancellationToken);
}

/// <summary>
/// Implemented by the bound options of a check type that reads files of its own beyond its dataset (e.g. a VNN-LIB
/// spec): the sandbox is given exactly these files, so a check that reads a file must declare it here.
/// </summary>
public interface IReadsInputFiles
{
    /// <summary>Absolute paths, resolved at bind time.</summary>
    IReadOnlyList<string> InputFiles { get; }
}

/// <summary>
/// Implemented by a check type that must judge its bound options against the model before anything runs (e.g. the
/// adversarial check refuses to perturb integer token ids): problems are policy errors, exit 3, at plan time.
/// </summary>
public interface IRefusesModels
{
    void Refuse(CheckSpec spec, object options, DeploymentPolicy policy, Model.OnnxModel model, List<PolicyError> errors);
}

/// <summary>Typed convenience base: options are bound once and handed back typed.</summary>
public abstract class Check<TOptions> : ICheck where TOptions : class
{
    public abstract CheckDeclaration Declaration { get; }
    public string Type => Declaration.Type;
    public string Purpose => Declaration.Purpose;
    public abstract CheckPlacement Placement { get; }
    public abstract TOptions BindOptions(CheckSpec spec, DeploymentPolicy policy);
    public abstract Task<CheckResult> RunAsync(CheckContext context, CheckSpec spec, TOptions options, CancellationToken cancellationToken);

    object ICheck.Bind(CheckSpec spec, DeploymentPolicy policy) => BindOptions(spec, policy);
    public Type OptionsType => typeof(TOptions);
    Task<CheckResult> ICheck.RunAsync(CheckContext context, CheckSpec spec, object options, CancellationToken ct) =>
        RunAsync(context, spec, (TOptions)options, ct);

    /// <summary>A fresh result carrying the spec's identity.</summary>
    protected static CheckResult NewResult(CheckSpec spec) => new() { Id = spec.Id, Type = spec.Type, Enforcement = spec.Enforcement };
}
