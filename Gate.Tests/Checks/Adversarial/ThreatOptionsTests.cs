using Gate.Core.Checks;
using Gate.Core.Checks.Adversarial;
using Gate.Core.Checks.Formal;
using Gate.Core.Governance;
using Gate.Core.Policy;
using Gate.Tests.Governance;

namespace Gate.Tests.Checks.Adversarial;

/// <summary>
/// One perturbation type: the adversarial search and the formal proof bind their ε, norm and input range through
/// <see cref="ThreatOptions"/> into <see cref="ThreatModel"/>, and lint and review describe that same bound set.
/// </summary>
public class ThreatOptionsTests
{
    // A second input with its own range: the threat names it, so its range (not the first input's) bounds the set.
    private static readonly string TwoInputs = PolicyLintTests.Strong
        .Replace("input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }", "input: { shape: [-1, 1, 8, 8], range: [0.0, 1.0] }\n      raw: { shape: [-1, 1, 8, 8], range: [0.0, 1000.0] }")
        .Replace("threat: { norm: linf, epsilon: 0.05 }", "threat: { norm: linf, epsilon: 0.5, input: raw }");

    private static T Bind<T>(DeploymentPolicy policy, string type)
    {
        var spec = policy.Spec.Checks.Single(c => c.Type == type);
        return (T)CheckRegistry.Find(type)!.Bind(spec, policy)!;
    }

    [Fact]
    public void Adversarial_lint_and_review_read_the_threat_the_check_binds()
    {
        var policy = PolicyLintTests.Parse(TwoInputs);
        Assert.Equal(new ThreatModel(PerturbationNorm.Linf, 0.5, 0, 1000), Bind<AdversarialOptions>(policy, "adversarial").Threat);
        // ε = 0.5 is 0.05% of the range of the input it perturbs (not 50% of the first input's range).
        Assert.Contains(PolicyLint.Lint(policy).Warnings, w => w.Path == "spec.checks[2].threat.epsilon" && w.Message.Contains("0.05% of the input range [0, 1000]"));
        Assert.Contains("within L∞ ε = 0.5 (0.05% of the input range [0, 1000]).", PolicyReview.Render(policy, "md"));
    }

    [Fact]
    public void Formal_binds_its_property_radius_as_the_same_threat_type_and_review_says_so()
    {
        var policy = PolicyLintTests.Parse(PolicyLintTests.Strong.Replace("  decision:",
            "    - id: proof\n      type: formal\n      dataset: test\n      property: { type: local-robustness, epsilon: 0.0005 }\n      require: { provedFraction: { min: 0.9 } }\n  decision:"));
        Assert.Equal(new ThreatModel(PerturbationNorm.Linf, 0.0005, 0, 1), Bind<FormalOptions>(policy, "formal").Threat);
        Assert.Contains(PolicyLint.Lint(policy).Warnings, w => w.Path == "spec.checks[4].property.epsilon" && w.Message.Contains("0.05% of the input range [0, 1]"));
        Assert.Contains("Property: local-robustness within L∞ ε = 0.0005 (0.05% of the input range [0, 1]); method bab", PolicyReview.Render(policy, "md"));
    }
}
