using Gate.Core.Report;
using Gate.Tests.Support;
using Microsoft.Playwright;

namespace Gate.Tests.Report;

/// <summary>Opens report.html in headless Chromium (Debian's package, not Playwright's download) as a reader would.</summary>
public class ReportBrowserTests
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task Report_opens_in_chromium_with_the_verdict_and_every_check_visible()
    {
        Need.Component("GATE_REQUIRE_CHROMIUM", File.Exists(Chromium), $"{Chromium} is missing (scripts/setup.d/30-chromium.sh installs it)");
        var record = SampleRecords.Full();
        var dir = TestPaths.TempDir("gate-report-browser");
        ReportWriter.Write(record, dir);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium, Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1100, Height = 900 } });
        var requests = new List<string>();
        page.Request += (_, r) => requests.Add(r.Url);
        await page.GotoAsync(new Uri(Path.Combine(dir, ReportWriter.HtmlFile)).AbsoluteUri);

        var verdict = page.Locator("#verdict h1");
        Assert.True(await verdict.IsVisibleAsync());
        Assert.Equal("REJECT", (await verdict.InnerTextAsync()).Trim());
        foreach (var c in record.Checks)
        {
            var section = page.Locator($"section[data-check-id=\"{c.Id}\"]");
            await section.ScrollIntoViewIfNeededAsync();
            Assert.True(await section.IsVisibleAsync(), $"section for {c.Id} is not visible");
            Assert.Contains(c.Id, await section.Locator("h2").InnerTextAsync());
        }
        // Every plot rendered with a real size (a broken SVG renders as 0×0).
        var plots = page.Locator("section.check svg");
        Assert.Equal(6, await plots.CountAsync()); // curve, layers, 3 masks, trajectories
        for (int i = 0; i < await plots.CountAsync(); i++)
        {
            var box = await plots.Nth(i).BoundingBoxAsync();
            Assert.True(box is { Width: > 20, Height: > 20 }, $"plot {i} has no size");
        }
        // The escaped hostile summary shows as text, and no script ran.
        Assert.Contains("<script>alert('x')</script>", await page.Locator("section[data-check-id=\"graph\"] p").First.InnerTextAsync());
        Assert.All(requests, u => Assert.StartsWith("file://", u));

        var shots = Path.Combine(AppContext.BaseDirectory, "screenshots");
        Directory.CreateDirectory(shots);
        var shot = Path.Combine(shots, "report.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = shot, FullPage = true });
        Assert.True(new FileInfo(shot).Length > 10_000);
    }
}
