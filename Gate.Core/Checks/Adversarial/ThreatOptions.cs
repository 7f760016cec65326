using Gate.Core.Policy;

namespace Gate.Core.Checks.Adversarial;

/// <summary>
/// The one declaration of a perturbation set in a policy (<c>norm</c>, <c>epsilon</c>, optionally <c>input</c>), shared by
/// the adversarial search (<c>threat:</c>) and the formal proof (<c>property:</c>), bound to the one runtime type
/// <see cref="ThreatModel"/>; lint's "ε too small" and review's ε wording read the same declaration.
/// </summary>
public static class ThreatOptions
{
    public static OptionDecl Norm() => Opt.Enum("norm", "The norm that measures a perturbation: linf (largest change of any element) or l2 (Euclidean length).", "linf", "l2") with { Required = true };
    public static OptionDecl Epsilon() => Opt.Number("epsilon", "Radius ε of the perturbation set, in input units.", exclusiveMin: 0)
        with { Required = true, Strength = Strength.HigherIsStronger, Unit = "input units" };

    public static OptionDecl Threat(string key, string meaning, bool withInput) => withInput
        ? Opt.Mapping(key, meaning, Norm(), Epsilon(), Opt.Text("input", "The model input perturbed (default: the first declared input)."))
        : Opt.Mapping(key, meaning, Norm(), Epsilon());

    /// <summary>The bound perturbation set of a threat mapping, inside the declared range of the input it perturbs.</summary>
    public static ThreatModel Bind(PolicyMapping threat, InputSpec? input) =>
        new(PolicyLoader.Str(threat["norm"]) == "l2" ? PerturbationNorm.L2 : PerturbationNorm.Linf,
            ((PolicyScalar)threat["epsilon"]!).AsDouble(), input?.Min ?? double.NegativeInfinity, input?.Max ?? double.PositiveInfinity);
}
