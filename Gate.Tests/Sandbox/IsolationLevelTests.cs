using System.Text.Json;
using System.Text.Json.Nodes;
using Gate.Core.IO;
using Gate.Core;
using Gate.Core.Decision;
using Gate.Core.Policy;
using Gate.Core.Sandbox;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

/// <summary>
/// Isolation is one ordered type (<see cref="IsolationLevel"/>): the policy's floor, what a backend achieves, what the
/// selector compares and what decision.json records. Nothing else may hold its order or its names.
/// </summary>
public class IsolationLevelTests
{
    [Fact]
    public void The_schema_admits_exactly_the_policy_floors_in_the_types_order()
    {
        var iso = PolicySchema.V1.Root["properties"]!["spec"]!["properties"]!["sandbox"]!["properties"]!["isolation"]!;
        var floors = IsolationLevels.PolicyFloors.Select(l => l.Name()).ToArray();
        Assert.Equal(floors, iso["x-order"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray());
        Assert.Equal(floors.Order(), iso["enum"]!.AsArray().Select(n => n!.GetValue<string>()).Order());
        Assert.Equal(IsolationLevel.Container.Name(), iso["default"]!.GetValue<string>());
    }

    [Fact]
    public void Levels_are_ordered_weakest_first_and_named_as_in_policies()
    {
        Assert.Equal(["none", "process", "process-netns", "container"], IsolationLevels.All.Select(l => l.Name()));
        Assert.True(IsolationLevel.Container.Meets(IsolationLevel.ProcessNetns));
        Assert.True(IsolationLevel.ProcessNetns.Meets(IsolationLevel.ProcessNetns));
        Assert.False(IsolationLevel.Process.Meets(IsolationLevel.ProcessNetns));
        Assert.False(IsolationLevel.None.Meets(IsolationLevel.Process));
    }

    [Theory]
    [InlineData("process", IsolationLevel.Process)]
    [InlineData("process-netns", IsolationLevel.ProcessNetns)]
    [InlineData("container", IsolationLevel.Container)]
    public void A_policy_binds_its_floor_by_name(string name, IsolationLevel expected)
    {
        var dir = TestPaths.TempDir("isolation");
        var policy = PolicyLoader.Load(SandboxTestJobs.WritePolicy(dir, isolation: name));
        Assert.Equal(expected, policy.Spec.Sandbox.Isolation);
    }

    [Fact]
    public void Decision_json_names_levels_and_refuses_an_unknown_one()
    {
        var info = new SandboxInfo("process", IsolationLevel.ProcessNetns, IsolationLevel.Container, null, null, null);
        var json = JsonSerializer.SerializeToNode(info, GateJson.Options)!;
        Assert.Equal("process-netns", json["isolation"]!.GetValue<string>());
        Assert.Equal("container", json["requiredIsolation"]!.GetValue<string>());
        Assert.Equal(info, json.Deserialize<SandboxInfo>(GateJson.Options));
        json["isolation"] = "vm";
        Assert.Throws<JsonException>(() => json.Deserialize<SandboxInfo>(GateJson.Options));
    }

    /// <summary>The pipeline asks for a backend with the policy's floor, before any check (host checks included) runs.</summary>
    [Fact]
    public async Task The_pipeline_selects_its_backend_for_the_policys_floor_before_any_work()
    {
        var dir = TestPaths.TempDir("isolation");
        var policy = SandboxTestJobs.WritePolicy(dir, isolation: "process-netns");
        var asked = new List<IsolationLevel>();
        var pipeline = GateCheckPipeline.Selecting(floor =>
        {
            asked.Add(floor);
            throw new GateInputException("no backend meets the floor");
        });
        var outDir = Path.Combine(dir, "out");
        var e = await Assert.ThrowsAsync<GateInputException>(() => pipeline.RunAsync(new GateCheckRequest(SandboxTestJobs.ModelPath, policy, outDir), null, TestContext.Current.CancellationToken));
        Assert.Equal("no backend meets the floor", e.Message);
        Assert.Equal([IsolationLevel.ProcessNetns], asked);
        Assert.False(Directory.Exists(Path.Combine(outDir, "evidence")), "the host check ran before the backend was chosen");
    }

    /// <summary>
    /// <c>--sandbox auto</c> on a host without Docker, for a policy whose floor the process backend cannot meet: exit 3
    /// before any work, naming the floor and why each backend is out — not a run whose sandbox checks end INCONCLUSIVE.
    /// </summary>
    [Fact]
    public void Auto_fails_early_with_the_reason_when_no_backend_meets_the_floor()
    {
        var dir = TestPaths.TempDir("isolation");
        var policy = SandboxTestJobs.WritePolicy(dir, isolation: "container");
        var outDir = Path.Combine(dir, "out");
        var r = GateProcess.Run(["check", "--model", SandboxTestJobs.ModelPath, "--policy", policy, "--out", outDir, "--sandbox", "auto"],
            new Dictionary<string, string>
            {
                ["DOCKER_HOST"] = "unix://" + Path.Combine(dir, "no-engine.sock"),
                // No runner rootfs, so bubblewrap is out too: only the process backend is left, below the floor.
                [Gate.Sandbox.Rootfs.RunnerRootfs.Variable] = Path.Combine(dir, "no-rootfs"),
            }, TimeSpan.FromMinutes(2));
        Assert.True(r.ExitCode == 3, r.All);
        Assert.Contains("isolation floor 'container'", r.Stderr);
        Assert.Contains("docker:", r.Stderr);
        Assert.Contains("bubblewrap:", r.Stderr);
        Assert.Contains("the process backend achieves only", r.Stderr);
        Assert.False(File.Exists(Path.Combine(outDir, "decision.json")));
    }
}
