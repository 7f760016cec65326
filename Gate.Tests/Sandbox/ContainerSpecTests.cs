using System.Text.Json.Nodes;
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
        var h = s["HostConfig"]!;
        Assert.Equal("none", h["NetworkMode"]!.GetValue<string>());
        Assert.True(s["NetworkDisabled"]!.GetValue<bool>());
        Assert.True(h["ReadonlyRootfs"]!.GetValue<bool>());
        Assert.Equal("[\"ALL\"]", h["CapDrop"]!.ToJsonString());
        Assert.Equal("[\"no-new-privileges\"]", h["SecurityOpt"]!.ToJsonString());
        Assert.False(h["Privileged"]!.GetValue<bool>());
        Assert.Equal("65534:65534", s["User"]!.GetValue<string>());
        Assert.Equal(128, h["PidsLimit"]!.GetValue<int>());
        Assert.Equal(3L << 30, h["Memory"]!.GetValue<long>());
        Assert.Equal(h["Memory"]!.GetValue<long>(), h["MemorySwap"]!.GetValue<long>());
        Assert.Equal(1_500_000_000L, h["NanoCpus"]!.GetValue<long>());
        var tmp = h["Tmpfs"]!["/tmp"]!.GetValue<string>();
        Assert.Contains("noexec", tmp.Split(','));
        Assert.Contains(tmp.Split(','), o => o.StartsWith("size=", StringComparison.Ordinal));
        Assert.Equal("[\"/w/job:/job:ro\",\"/w/results:/results:rw\"]", h["Binds"]!.ToJsonString());
        Assert.Empty(s["Env"]!.AsArray());
        Assert.Equal("10m", h["LogConfig"]!["Config"]!["max-size"]!.GetValue<string>());
        Assert.Null(h["DeviceRequests"]);
        Assert.Equal("h:1", s["Labels"]![ContainerSpec.OwnerLabel]!.GetValue<string>());
    }

    [Fact]
    public void Gpu_adds_an_nvidia_device_request_and_fault_mode_is_explicit()
    {
        var s = ContainerSpec.Create("img", "/j", "/r", Limits, gpu: true, faultsEnabled: true, owner: "h:1");
        var req = Assert.Single(s["HostConfig"]!["DeviceRequests"]!.AsArray())!;
        Assert.Equal("nvidia", req["Driver"]!.GetValue<string>());
        Assert.Equal(-1, req["Count"]!.GetValue<int>());
        Assert.Equal("[[\"gpu\"]]", req["Capabilities"]!.ToJsonString());
        Assert.Equal("[\"GATE_RUNNER_FAULTS=1\"]", s["Env"]!.ToJsonString());
    }

    [Theory]
    [InlineData("1.43", "1.41")]
    [InlineData("1.41", "1.41")]
    [InlineData("1.40", "1.40")]
    [InlineData(null, "1.41")]
    public void Api_version_is_the_lower_of_ours_and_the_engines(string? engine, string expected) =>
        Assert.Equal(expected, DockerClient.Negotiate(engine));

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
