using Gate.Core.Checks;
using Gate.Core.Governance;
using Gate.Core.Policy;
using Gate.Tests.Support;

namespace Gate.Tests.Governance;

public class PolicyReviewTests
{
    private static string PolicyFile(string name) => Path.Combine(TestPaths.RepoRoot, "Gate.Tests", "Governance", "Policies", name);
    // Our own type texts only, so the approved files do not change whenever a check type lands in the registry.
    private static ICheck? NoImplementations(string type) => null;

    [Theory]
    [InlineData("digits-release.yaml", "md")]
    [InlineData("gridworld-agent.yaml", "md")]
    [InlineData("weak-experiment.yaml", "md")]
    [InlineData("weak-experiment.yaml", "html")]
    [InlineData("absent-supervisor-release.yaml", "md")]
    public void Review_matches_the_approved_text(string policy, string format)
    {
        var text = PolicyReview.Render(PolicyLoader.Load(PolicyFile(policy)), format, NoImplementations);
        ApprovedFile.Verify(text, $"{Path.GetFileNameWithoutExtension(policy)}.review.{format}");
    }

    [Fact]
    public void Review_states_the_digest_budgets_and_gaps()
    {
        var policy = PolicyLoader.Load(PolicyFile("digits-release.yaml"));
        var md = PolicyReview.Render(policy, "md", NoImplementations);
        Assert.Contains(policy.Sha256, md);
        Assert.Contains("200 test inputs from dataset 'test'", md);
        Assert.Contains("PGD 40 steps × 5 restarts, then Square attack 1,000 queries, within L∞ ε = 0.05", md);
        Assert.Contains("No simulation", md);
        Assert.Contains("No formal proof", md);
        Assert.Contains("No GPU parity", md);
        Assert.DoesNotContain("No blocking adversarial", md); // it has one
        Assert.Contains("the model is REJECTED (decision.onInconclusive: reject)", md);
    }

    [Fact]
    public void Review_uses_the_implementations_purpose_when_the_build_has_one()
    {
        var policy = PolicyLoader.Load(PolicyFile("digits-release.yaml"));
        var md = PolicyReview.Render(policy, "md");
        var impl = CheckRegistry.Find("accuracy");
        Assert.NotNull(impl);
        Assert.Contains($"What it tests: {impl.Purpose}", md);
    }

    [Fact]
    public void Html_review_escapes_policy_text()
    {
        var yaml = File.ReadAllText(PolicyFile("weak-experiment.yaml")).Replace("owner: research", "owner: \"<script>x</script>\"");
        var policy = PolicyLoader.Parse(System.Text.Encoding.UTF8.GetBytes(yaml), "p.yaml");
        var html = PolicyReview.Render(policy, "html", NoImplementations);
        Assert.DoesNotContain("<script>", html);
        Assert.Contains("&lt;script&gt;x&lt;/script&gt;", html);
    }
}
