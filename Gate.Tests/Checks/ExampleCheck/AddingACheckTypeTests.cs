using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Checks.Adversarial;
using Gate.Core.Governance;
using Gate.Core.Policy;
using Gate.Tests.Governance;

namespace Gate.Tests.Checks.ExampleCheck;

/// <summary>
/// "Adding a check type is one folder": <see cref="ExampleCheck"/> is registered from here, and the loader, the
/// generated schema, lint, review and diff all handle it with no edit to any of them (docs/architecture.md).
/// </summary>
public class AddingACheckTypeTests
{
    static AddingACheckTypeTests() => CheckTypes.Register(new ExampleCheck());

    private const string Check = "    - id: mean\n      type: example-mean\n      dataset: test\n      require: { meanOutput: { max: 0.2 } }\n";
    private static string Policy(string check) => PolicyLintTests.Strong.Replace("  decision:", check + "  decision:");

    [Fact]
    public void The_registry_and_the_loader_know_the_new_type_and_bind_its_declared_defaults()
    {
        Assert.IsType<ExampleCheck>(CheckRegistry.Find("example-mean"));
        var policy = PolicyLintTests.Parse(Policy(Check));
        var spec = policy.Spec.Checks.Single(c => c.Type == "example-mean");
        var bound = (ExampleOptions)CheckRegistry.Find("example-mean")!.Bind(spec, policy);
        Assert.Equal(new ExampleOptions("test", 32, 0.5, null), bound);
        // The generated schema validates its options: a wrong type and an unknown key are positioned errors.
        var e = Assert.Throws<PolicyException>(() => PolicyLintTests.Parse(Policy(Check + "      tolerance: -1\n      colour: red\n")));
        Assert.Contains(e.Errors, x => x.Path == "spec.checks[4].tolerance" && x.Message.Contains("must be > 0"));
        Assert.Contains(e.Errors, x => x.Message.Contains("unknown key 'colour'"));
    }

    [Fact]
    public void Schema_generation_describes_it_from_its_declaration()
    {
        var schema = PolicySchemaGenerator.Generate(PolicySchema.Embedded, [.. CheckTypes.BuiltIn, ExampleCheck.Declared]);
        var def = schema["$defs"]!["exampleMean"]!;
        Assert.Equal(32, def["properties"]!["samples"]!["default"]!.GetValue<int>());
        Assert.Equal("lower-is-stronger", def["properties"]!["tolerance"]!["x-strength"]!.GetValue<string>());
        Assert.Contains("example-mean", schema["$defs"]!["checkType"]!["enum"]!.AsArray().Select(x => x!.GetValue<string>()));
    }

    [Fact]
    public void Lint_review_and_diff_handle_it()
    {
        var policy = PolicyLintTests.Parse(Policy(Check.Replace("{ max: 0.2 }", "{ min: 0 }") + "      samples: 5\n"));
        var lint = PolicyLint.Lint(policy);
        Assert.Empty(lint.Errors);
        Assert.Contains(lint.Warnings, w => w.Path == "spec.checks[4].samples" && w.Message.Contains("too few"));

        var md = PolicyReview.Render(PolicyLintTests.Parse(Policy(Check)), "md");
        Assert.Contains("### mean: example-mean (blocking)", md);
        Assert.Contains($"What it tests: {ExampleCheck.Declared.Purpose}", md);
        Assert.Contains("Data: up to 32 samples (default) from dataset 'test'", md);
        Assert.Contains("tolerance: 0.5 (default) output units. Largest allowed absolute mean.", md);
        Assert.Contains("Requirement: mean of the first output must be at most 0.2.", md);

        var looser = PolicyLintTests.Parse(Policy(Check + "      tolerance: 0.9\n"));
        var change = Assert.Single(PolicyDiff.Compare(PolicyLintTests.Parse(Policy(Check)), looser));
        Assert.Equal(("spec.checks[mean].tolerance", ChangeKind.Weakening, "0.5 (default)"), (change.Path, change.Kind, change.Old));
    }

    [Fact]
    public void A_declared_perturbation_set_is_bound_linted_reviewed_and_diffed_as_the_one_threat_type()
    {
        // The example declares a perturbation set with ThreatOptions, as adversarial and formal do: binding, lint's
        // "ε too small", review's wording and diff's strength all come from that one declaration and ThreatModel.
        string Perturbed(double eps) => Policy(Check + $"      perturbation: {{ norm: l2, epsilon: {eps.ToString(System.Globalization.CultureInfo.InvariantCulture)} }}\n");
        var tiny = PolicyLintTests.Parse(Perturbed(0.0001));
        var spec = tiny.Spec.Checks.Single(c => c.Type == "example-mean");
        var bound = (ExampleOptions)CheckRegistry.Find("example-mean")!.Bind(spec, tiny);
        Assert.Equal(new ThreatModel(PerturbationNorm.L2, 0.0001, 0, 1), bound.Perturbation);

        Assert.Contains(PolicyLint.Lint(tiny).Warnings, w => w.Path == "spec.checks[4].perturbation.epsilon" && w.Message.Contains("0.01% of the input range [0, 1]"));
        Assert.Contains("perturbation: L2 ε = 0.0001 (0.01% of the input range [0, 1]). Inputs around each sample whose outputs count too.",
            PolicyReview.Render(tiny, "md"));
        var change = Assert.Single(PolicyDiff.Compare(PolicyLintTests.Parse(Perturbed(0.05)), tiny));
        Assert.Equal(("spec.checks[mean].perturbation.epsilon", ChangeKind.Weakening), (change.Path, change.Kind));
    }
}
