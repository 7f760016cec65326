using System.Text.Json.Nodes;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Sandbox.Docker;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

/// <summary>`gate sandbox …` as a user runs it (the gate program beside the tests, in a child process).</summary>
public class SandboxCliTests
{
    private static (int Code, string Stdout, string Stderr) Gate(params string[] args)
    {
        var r = GateCli.Run(args);
        return (r.ExitCode, r.Stdout, r.Stderr);
    }

    [Fact]
    public void Selftest_on_the_process_backend_reports_every_probe_as_json()
    {
        var (code, stdout, stderr) = Gate("sandbox", "selftest", "--sandbox", "process", "--json");
        Assert.True(code == 0, stderr);
        var report = JsonNode.Parse(stdout)!;
        Assert.Equal("process", report["backend"]!.GetValue<string>());
        Assert.Equal(6, report["probes"]!.AsArray().Count);
        Assert.All(report["probes"]!.AsArray(), p => Assert.Contains(p!["outcome"]!.GetValue<string>(), new[] { "blocked", "allowed" }));
    }

    [Fact]
    public void An_unknown_backend_is_a_usage_error()
    {
        var (code, _, stderr) = Gate("sandbox", "selftest", "--sandbox", "vm");
        Assert.Equal(3, code);
        Assert.Contains("--sandbox", stderr);
        Assert.DoesNotContain("   at ", stderr); // no stack trace
    }

    [Fact]
    public async Task No_engine_on_the_socket_means_not_ready_rather_than_an_error()
    {
        using var client = new DockerEngine(Path.Combine(TestPaths.TempDir("gate-nosock"), "docker.sock"));
        Assert.False(await client.PingAsync(TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken));
        var backend = new DockerBackend(client, "gate-sandbox-runner:none");
        var dir = TestPaths.TempDir("gate-sbx");
        var outcome = await backend.RunAsync(SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir)), Path.Combine(dir, "ev"), new Progress<ProgressUpdate>(), TestContext.Current.CancellationToken);
        Assert.False(outcome.Completed);
        Assert.Contains("no Docker engine answers on", outcome.FaultReason);
        Assert.NotNull(outcome.Details?["selfTest"]?["error"]);
    }
}
