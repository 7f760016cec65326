using System.Text.Json.Nodes;
using System.Xml.Linq;
using Gate.Tests.Support;

namespace Gate.Tests.Report;

/// <summary>`gate check` writes the report files next to decision.json, and they agree with it.</summary>
public class CheckCommandReportTests
{
    [Fact]
    public void Gate_check_writes_report_summary_and_junit_consistent_with_the_decision()
    {
        var outDir = TestPaths.TempDir("gate-check-report");
        var (exit, stdout, _) = GateCli.Run("check", "--model", Path.Combine(TestPaths.RepoRoot, "examples", "digits", "digits-cnn.onnx"),
            "--policy", Path.Combine(TestPaths.RepoRoot, "policies", "digits-release.yaml"), "--out", outDir, "--json");
        Assert.InRange(exit, 0, 2);
        var decision = JsonNode.Parse(stdout)!;
        var decisionText = decision["decision"]!.GetValue<string>().ToUpperInvariant();
        var checks = decision["checks"]!.AsArray().Select(c => c!["id"]!.GetValue<string>()).ToList();

        var html = File.ReadAllText(Path.Combine(outDir, "report.html"));
        Assert.Contains($"data-decision=\"{decisionText}\"", html);
        foreach (var id in checks) Assert.Contains($"data-check-id=\"{id}\"", html);

        Assert.StartsWith($"# Gate: ", File.ReadAllText(Path.Combine(outDir, "summary.md")));
        Assert.Contains(decisionText, File.ReadAllText(Path.Combine(outDir, "summary.md")).Split('\n')[0]);

        var junit = XDocument.Load(Path.Combine(outDir, "junit.xml"));
        Assert.Equal(checks.Append("decision"), junit.Descendants("testcase").Select(t => ((string)t.Attribute("name")!).Replace(" (advisory)", "")));
        Assert.Equal(decisionText == "APPROVE", junit.Descendants("testcase").Last().Elements().All(e => e.Name == "system-out"));
    }
}
