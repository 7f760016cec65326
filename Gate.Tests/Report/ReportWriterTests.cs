using System.Text.RegularExpressions;
using System.Xml.Linq;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Report;
using Gate.Tests.Support;

namespace Gate.Tests.Report;

public class ReportWriterTests
{
    [Fact]
    public void Html_is_self_contained_with_no_scripts_or_external_references()
    {
        var html = ReportWriter.RenderHtml(SampleRecords.Full());
        Assert.DoesNotMatch(new Regex("<script", RegexOptions.IgnoreCase), html);
        Assert.DoesNotMatch(new Regex(@"<(link|iframe|object|embed|img)\b", RegexOptions.IgnoreCase), html);
        Assert.DoesNotMatch(new Regex(@"<[^>]*\s(src|srcset)\s*=|url\(|@import", RegexOptions.IgnoreCase), html); // in tags, not escaped text
        Assert.All(Regex.Matches(html, @"<a\s[^>]*href=""([^""]*)""").Select(m => m.Groups[1].Value), href => Assert.StartsWith("#", href));
        // The only URL is the SVG namespace, which is a name, not something fetched.
        foreach (Match m in Regex.Matches(html, @"https?://[^\s""'<>]+"))
            Assert.Equal("http://www.w3.org/2000/svg", m.Value);
        Assert.Contains("default-src 'none'", html);
    }

    [Fact]
    public void Model_and_policy_controlled_text_is_escaped()
    {
        var html = ReportWriter.RenderHtml(SampleRecords.Full());
        Assert.DoesNotContain("<script>alert", html);
        Assert.DoesNotContain("<img src=x", html);
        Assert.Contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;", html);
        Assert.Contains("&quot;quoted&quot;", html);
    }

    [Fact]
    public void Html_has_the_verdict_and_one_section_per_check_in_order()
    {
        var record = SampleRecords.Full();
        var html = ReportWriter.RenderHtml(record);
        Assert.Contains("data-decision=\"REJECT\"", html);
        var ids = Regex.Matches(html, "data-check-id=\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(record.Checks.Select(c => c.Id), ids);
        foreach (var c in record.Checks)
            Assert.Contains($"data-check-id=\"{c.Id}\" data-verdict=\"{c.Verdict.ToString().ToUpperInvariant()}\"", html);
        Assert.Contains(new string('a', 64), html); // evidence digest
        Assert.Contains("200 test inputs, PGD 40 steps × 5 restarts", html); // coverage statement
        Assert.Contains("not met", html); // requirement outcome
    }

    [Fact]
    public void Plots_are_drawn_from_details_with_one_mark_per_data_point()
    {
        var record = SampleRecords.Full();
        var html = ReportWriter.RenderHtml(record);
        string Section(string id)
        {
            int start = html.IndexOf($"data-check-id=\"{id}\"", StringComparison.Ordinal);
            int end = html.IndexOf("</section>", start, StringComparison.Ordinal);
            return html[start..end];
        }
        // Curve: 5 points → 5 circles on one polyline.
        var adv = Section("robustness");
        Assert.Equal(5, Regex.Matches(adv, "<circle ").Count);
        Assert.Single(Regex.Matches(adv, "<polyline "));
        // Layers: 3 bars, 3 error bars, a chance line.
        var probe = Section("probe");
        Assert.Equal(3, Regex.Matches(probe, "<rect ").Count);
        Assert.Equal(3, Regex.Matches(probe, "<path d=").Count);
        Assert.Contains(">chance<", probe);
        // Masks: 3 heat maps of 8×8 cells; the flagged one is marked.
        var trojan = Section("trojan");
        Assert.Equal(3, Regex.Matches(trojan, "<figure class=\"mask").Count);
        Assert.Equal(3 * 64, Regex.Matches(trojan, "<rect ").Count);
        Assert.Single(Regex.Matches(trojan, "mask flagged"));
        // A mask value of 1 is black, 0 white; mask 0 has values 1.0 and 0.0 only.
        Assert.Contains("fill=\"rgb(0,0,0)\"", trojan);
        Assert.Contains("fill=\"rgb(255,255,255)\"", trojan);
        // Trajectories: one polyline per path, the flagged one red.
        var sim = Section("agent-sim");
        Assert.Equal(2, Regex.Matches(sim, "<polyline ").Count);
        Assert.Contains("stroke=\"#c0392b\"", sim);
        // Wrongly shaped details: no plot, no crash.
        var graph = Section("graph");
        Assert.DoesNotContain("<svg", graph);
    }

    [Fact]
    public void Trajectories_given_as_rendered_frames_are_read_off_the_boards()
    {
        // The shape the simulation check writes: one rendered board per step, the agent drawn as 'A'.
        string[] Board(int r, int c)
        {
            var rows = new[] { " ###### ", " #    # ", " # ## # ", " #P## # ", " #G   # ", " ###### " }.Select(x => x.ToCharArray()).ToArray();
            rows[r][c] = 'A';
            return rows.Select(x => new string(x)).ToArray();
        }
        var frames = new System.Text.Json.Nodes.JsonArray(new[] { (1, 2), (2, 2), (3, 2), (4, 2) }.Select(p => (System.Text.Json.Nodes.JsonNode)string.Join("\n", Board(p.Item1, p.Item2))).ToArray());
        var details = new System.Text.Json.Nodes.JsonObject
        {
            [ReportDetails.Trajectories] = new System.Text.Json.Nodes.JsonArray(
                new System.Text.Json.Nodes.JsonObject { ["name"] = "violation", ["scenario"] = "unsupervised", ["note"] = "steps on P", ["frames"] = frames },
                new System.Text.Json.Nodes.JsonObject { ["name"] = "no path at all" }),
        };
        var (paths, grid) = TrajectoryDetails.Read(details);
        var path = Assert.Single(paths);
        Assert.Equal([[1, 2], [2, 2], [3, 2], [4, 2]], path.Points);
        Assert.True(path.Flagged);
        Assert.Contains("unsupervised", path.Label);
        Assert.NotNull(grid);
        Assert.Equal((6, 8), (grid.Rows, grid.Cols));
        Assert.Equal(6 + 2 + 4 + 4 + 2 + 6, grid.Walls!.Length); // the # cells of the first frame, row by row

        var record = SampleRecords.Full();
        record.Checks[4].Details.Clear();
        foreach (var (k, v) in details) record.Checks[4].Details[k] = v!.DeepClone();
        var html = ReportWriter.RenderHtml(record);
        Assert.Contains("<polyline fill=\"none\" stroke=\"#c0392b\"", html);
    }

    [Fact]
    public void Curve_points_are_placed_monotonically_with_the_data()
    {
        // Higher robust accuracy must be drawn higher (smaller SVG y); larger ε further right.
        var svg = Svg.LineChart([(0.0, 1.0), (0.05, 0.5), (0.1, 0.0)], "ε", "acc", "t");
        var pts = Regex.Matches(svg, "<circle cx=\"([0-9.]+)\" cy=\"([0-9.]+)\"")
            .Select(m => (X: double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Y: double.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture))).ToList();
        Assert.Equal(3, pts.Count);
        Assert.True(pts[0].X < pts[1].X && pts[1].X < pts[2].X);
        Assert.True(pts[0].Y < pts[1].Y && pts[1].Y < pts[2].Y);
        Assert.Equal((pts[0].Y + pts[2].Y) / 2, pts[1].Y, 1);
    }

    [Fact]
    public void JUnit_has_one_case_per_check_and_never_shows_inconclusive_as_green()
    {
        var record = SampleRecords.Full(GateDecision.Inconclusive);
        record.Checks[0].Summary += "\u0001\u0007 control characters";
        var doc = XDocument.Parse(ReportWriter.RenderJUnit(record));
        var suite = doc.Root!.Element("testsuite")!;
        var cases = suite.Elements("testcase").ToList();
        Assert.Equal(record.Checks.Count + 1, cases.Count);
        for (int i = 0; i < record.Checks.Count; i++)
        {
            var c = record.Checks[i];
            var tc = cases[i];
            Assert.StartsWith(c.Id, (string)tc.Attribute("name")!);
            Assert.Equal(c.Verdict == Verdict.Fail, tc.Element("failure") is not null);
            Assert.Equal(c.Verdict == Verdict.Inconclusive, tc.Element("error") is not null);
            Assert.Null(tc.Element("skipped"));
        }
        Assert.Equal("trojan (advisory)", (string)cases[3].Attribute("name")!);
        var decision = cases[^1];
        Assert.Equal("decision", (string)decision.Attribute("name")!);
        Assert.NotNull(decision.Element("error"));
        Assert.Equal(record.Checks.Count(c => c.Verdict == Verdict.Fail), (int)suite.Attribute("failures")!);
        Assert.Equal(record.Checks.Count(c => c.Verdict == Verdict.Inconclusive) + 1, (int)suite.Attribute("errors")!);
        Assert.Equal(0, (int)suite.Attribute("skipped")!);
    }

    [Fact]
    public void JUnit_decision_case_fails_on_reject_and_passes_only_on_approve()
    {
        foreach (var d in Enum.GetValues<GateDecision>())
        {
            var dc = XDocument.Parse(ReportWriter.RenderJUnit(SampleRecords.Full(d))).Descendants("testcase").Last();
            Assert.Equal(d == GateDecision.Reject, dc.Element("failure") is not null);
            Assert.Equal(d == GateDecision.Inconclusive, dc.Element("error") is not null);
        }
    }

    [Fact]
    public void Markdown_summary_has_the_decision_and_a_row_per_check_that_pipes_cannot_break()
    {
        var record = SampleRecords.Full();
        var md = ReportWriter.RenderMarkdown(record);
        Assert.StartsWith("# Gate: ❌ REJECT", md);
        var rows = md.Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| check", StringComparison.Ordinal)).ToList();
        Assert.Equal(record.Checks.Count, rows.Count);
        foreach (var row in rows)
            Assert.Equal(6, Regex.Matches(row, @"(?<!\\)\|").Count); // 5 cells → 6 unescaped pipes
        Assert.DoesNotContain("<script>", md);
        Assert.Contains("wall time 2m exhausted", md); // reasons of checks that did not pass
    }

    [Fact]
    public void Write_puts_the_three_files_in_the_output_folder()
    {
        var dir = TestPaths.TempDir("gate-report");
        var written = ReportWriter.Write(SampleRecords.Full(), dir);
        Assert.Equal(["report.html", "summary.md", "junit.xml"], written.Select(Path.GetFileName));
        Assert.All(written, p => Assert.True(new FileInfo(p).Length > 100));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }
}
