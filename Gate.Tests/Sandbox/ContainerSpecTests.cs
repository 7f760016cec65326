using Gate.Core.Policy;
using Gate.Sandbox.Docker;

namespace Gate.Tests.Sandbox;

/// <summary>The exact container spec: every hardening setting, the policy's limits, GPU only when asked.</summary>
public class ContainerSpecTests
{
    private static readonly ResourceLimits Limits = new(3L << 30, 1.5, TimeSpan.FromMinutes(5), 128);

    [Fact]
    public void Spec_is_hardened_and_carries_the_policy_limits()
    {
        var s = ContainerSpec.Create("img:tag", "/w/job", "/w/results", Limits, gpu: false, faultsEnabled: false, owner: "h:1");
        var h = s.HostConfig!;
        Assert.Equal("none", h.NetworkMode);
        Assert.True(s.NetworkDisabled);
        Assert.True(h.ReadonlyRootfs);
        Assert.Equal(["ALL"], h.CapDrop);
        Assert.Equal(["no-new-privileges"], h.SecurityOpt);
        Assert.False(h.Privileged);
        Assert.Equal("65534:65534", s.User);
        Assert.Equal(128, h.PidsLimit);
        Assert.Equal(3L << 30, h.Memory);
        Assert.Equal(h.Memory, h.MemorySwap);
        Assert.Equal(1_500_000_000L, h.NanoCPUs);
        var tmp = h.Tmpfs!["/tmp"];
        Assert.Contains("noexec", tmp.Split(','));
        Assert.Contains(tmp.Split(','), o => o.StartsWith("size=", StringComparison.Ordinal));
        Assert.Equal(["/w/job:/job:ro", "/w/results:/results:rw"], h.Binds);
        Assert.Empty(s.Env!);
        Assert.Equal("10m", h.LogConfig!.Config!["max-size"]);
        Assert.Null(h.DeviceRequests);
        Assert.Equal("h:1", s.Labels[ContainerSpec.OwnerLabel]);
    }

    [Fact]
    public void The_spec_reaches_the_engine_as_the_engine_api_spells_it()
    {
        // What Docker.DotNet sends: the field names and values the engine reads (a renamed field would be silently ignored).
        var json = System.Text.Json.Nodes.JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(
            ContainerSpec.Create("img", "/j", "/r", Limits, gpu: true, faultsEnabled: false, owner: "h:1")))!;
        var h = json["HostConfig"]!;
        Assert.Equal("none", h["NetworkMode"]!.GetValue<string>());
        Assert.True(h["ReadonlyRootfs"]!.GetValue<bool>());
        Assert.Equal("[\"ALL\"]", h["CapDrop"]!.ToJsonString());
        Assert.Equal("[\"no-new-privileges\"]", h["SecurityOpt"]!.ToJsonString());
        Assert.Equal(128, h["PidsLimit"]!.GetValue<long>());
        Assert.Equal(3L << 30, h["MemorySwap"]!.GetValue<long>());
        Assert.Equal(1_500_000_000L, h["NanoCpus"]!.GetValue<long>());
        Assert.Equal(ContainerSpec.TmpfsOptions, h["Tmpfs"]!["/tmp"]!.GetValue<string>());
        Assert.Equal("[[\"gpu\"]]", h["DeviceRequests"]![0]!["Capabilities"]!.ToJsonString());
        Assert.Equal("65534:65534", json["User"]!.GetValue<string>());
    }

    [Fact]
    public void Gpu_adds_an_nvidia_device_request_and_fault_mode_is_explicit()
    {
        var s = ContainerSpec.Create("img", "/j", "/r", Limits, gpu: true, faultsEnabled: true, owner: "h:1");
        var req = Assert.Single(s.HostConfig!.DeviceRequests!);
        Assert.Equal("nvidia", req.Driver);
        Assert.Equal(-1, req.Count);
        Assert.Equal("gpu", Assert.Single(Assert.Single(req.Capabilities!)));
        Assert.Equal(["GATE_RUNNER_FAULTS=1"], s.Env);
    }

    [Theory]
    [InlineData("1.43", "1.41")]
    [InlineData("1.41", "1.41")]
    [InlineData("1.40", "1.40")]
    [InlineData(null, "1.41")]
    public void Api_version_is_the_lower_of_ours_and_the_engines(string? engine, string expected) =>
        Assert.Equal(expected, DockerEngine.Negotiate(engine));

    [Fact]
    public void Dockerfile_has_no_shell_form_and_runs_unprivileged()
    {
        var df = RunnerImage.Dockerfile();
        Assert.StartsWith("FROM scratch", df);
        Assert.Contains("USER 65534:65534", df);
        // ONNX Runtime comes with the runner's own files (its NuGet runtime asset), not from a path the image names.
        Assert.DoesNotContain("GATE_ORT_LIB", df);
        Assert.DoesNotContain("RUN ", df); // nothing executes at build time: there is no shell in the image
        Assert.Matches("ENTRYPOINT \\[", df);
    }

    [Fact]
    public void Self_contained_runner_is_started_through_its_apphost_without_a_dotnet_host()
    {
        var df = RunnerImage.Dockerfile(selfContained: true);
        Assert.Contains("ENTRYPOINT [\"/gate/runner/Gate.Sandbox.Runner\"]", df);
        Assert.DoesNotContain("DOTNET_ROOT", df);
        Assert.DoesNotContain("/gate/dotnet/", df);

        var dir = Support.TestPaths.TempDir();
        Assert.False(RunnerImage.IsSelfContained(dir));
        File.WriteAllText(Path.Combine(dir, "libcoreclr.so"), "");
        File.WriteAllText(Path.Combine(dir, "Gate.Sandbox.Runner"), "");
        Assert.True(RunnerImage.IsSelfContained(dir));
    }
}
