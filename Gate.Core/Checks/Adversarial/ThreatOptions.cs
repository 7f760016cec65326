using Gate.Core.Policy;

namespace Gate.Core.Checks.Adversarial;

/// <summary>
/// The one declaration of a perturbation set in a policy (<c>norm</c>, <c>epsilon</c>, optionally <c>input</c>), shared by
/// the adversarial search (<c>threat:</c>) and the formal proof (<c>property:</c>), bound to the one runtime type
/// <see cref="ThreatModel"/> (radius and the declared range of the input it perturbs). Lint's "ε too small" and
/// review's wording bind the same set through <see cref="At"/>, so every check type that declares one is read alike.
/// </summary>
public static class ThreatOptions
{
    /// <summary>The unit of a perturbation radius: how lint and review find the perturbation sets a type declares.</summary>
    public const string RadiusUnit = "input units";

    public static OptionDecl Norm() => Opt.Enum("norm", "The norm that measures a perturbation: linf (largest change of any element) or l2 (Euclidean length).", "linf", "l2") with { Required = true };
    public static OptionDecl Epsilon() => Opt.Number("epsilon", "Radius ε of the perturbation set, in input units.", exclusiveMin: 0)
        with { Required = true, Strength = Strength.HigherIsStronger, Unit = RadiusUnit };

    public static OptionDecl Threat(string key, string meaning, bool withInput) => withInput
        ? Opt.Mapping(key, meaning, Norm(), Epsilon(), Opt.Text("input", "The model input perturbed (default: the first declared input)."))
        : Opt.Mapping(key, meaning, Norm(), Epsilon());

    /// <summary>
    /// The bound perturbation set of a threat mapping, inside the declared range of the input it perturbs
    /// (<see cref="PerturbedInput"/>). A mapping that declares only ε (a formal property) is an L∞ box.
    /// </summary>
    public static ThreatModel Bind(PolicyMapping threat, DeploymentPolicy policy)
    {
        var input = PerturbedInput(threat, policy);
        return new(PolicyLoader.Str(threat["norm"]) == "l2" ? PerturbationNorm.L2 : PerturbationNorm.Linf,
            ((PolicyScalar)threat["epsilon"]!).AsDouble(), input?.Min ?? double.NegativeInfinity, input?.Max ?? double.PositiveInfinity,
            PixelSpace: input?.Preprocess is not null);
    }

    /// <summary>The declared input a threat perturbs: its <c>input</c>, else the policy's first; null when the policy declares none (or not that one).</summary>
    public static InputSpec? PerturbedInput(PolicyMapping threat, DeploymentPolicy policy) =>
        PolicyLoader.Str(threat["input"]) is { } name ? policy.Spec.Model.Inputs.FirstOrDefault(i => i.Name == name) : policy.Spec.Model.Inputs.FirstOrDefault();

    /// <summary>
    /// The perturbation set whose radius a check declares at <paramref name="radiusPath"/> (e.g. "threat.epsilon"),
    /// bound as the check binds it; null when the spec gives no numeric radius there.
    /// </summary>
    public static ThreatModel? At(PolicyMapping check, string radiusPath, DeploymentPolicy policy)
    {
        PolicyNode? set = check;
        foreach (var part in radiusPath.Split('.')[..^1]) set = (set as PolicyMapping)?[part];
        return set is PolicyMapping m && m["epsilon"] is PolicyScalar { IsNumber: true } ? Bind(m, policy) : null;
    }
}
