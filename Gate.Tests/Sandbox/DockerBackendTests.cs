using Gate.Core.Policy;
using System.Net.Sockets;
using Gate.Core.Checks;
using Gate.Core.Evidence;
using Gate.Core.Sandbox;
using Gate.Sandbox;
using Gate.Sandbox.Docker;
using Gate.Tests.Support;

namespace Gate.Tests.Sandbox;

/// <summary>One image build for all Docker tests: the runner these tests were built with, tagged by content hash.</summary>
public sealed class DockerFixture : IAsyncLifetime
{
    public DockerEngine Client { get; } = DockerEngine.FromEnvironment();
    public bool EngineAnswers { get; private set; }
    public DockerBackend? Backend { get; private set; }
    public string? Image { get; private set; }

    public async ValueTask InitializeAsync()
    {
        EngineAnswers = await Client.PingAsync(TimeSpan.FromSeconds(3));
        if (!EngineAnswers) return;
        var runnerDir = RunnerImage.RunnerFilesFrom(AppContext.BaseDirectory);
        try { Image = (await RunnerImage.BuildAsync(Client, runnerDir, _ => { })).Tag; }
        finally { Directory.Delete(runnerDir, recursive: true); }
        Backend = new DockerBackend(Client, Image);
    }

    public ValueTask DisposeAsync() { Client.Dispose(); return ValueTask.CompletedTask; }

    public DockerBackend Require()
    {
        Need.Component("GATE_REQUIRE_DOCKER", EngineAnswers, $"no Docker engine answers on {Client.SocketPath}");
        return Backend!;
    }
}

/// <summary>
/// Containers are labelled with the owning process, and CLI tests now run gate in this process: run alone, so that
/// "nothing left behind" sees only this class's containers.
/// </summary>
[CollectionDefinition(nameof(DockerBackendTests), DisableParallelization = true)]
public sealed class DockerBackendCollection;

[Collection(nameof(DockerBackendTests))]
public sealed class DockerBackendTests(DockerFixture fixture) : BackendContract, IClassFixture<DockerFixture>
{
    protected override RunnerBackend Backend => fixture.Require();
    protected override IsolationLevel ExpectedIsolation => IsolationLevel.Container;
    protected override string OomFault => "oom-native";
    protected override string OomReason => "killed for memory (OOM";

    protected override void AssertNothingLeftBehind()
    {
        var mine = fixture.Client.ListContainersAsync($"{ContainerSpec.OwnerLabel}={DockerBackend.Owner}").GetAwaiter().GetResult();
        Assert.Empty(mine);
    }

    protected override void AssertSelfTest(IReadOnlyDictionary<string, string> probes) =>
        Assert.All(probes, p => Assert.Equal("blocked", p.Value));

    [Fact]
    public async Task The_decision_names_the_image_it_ran_in()
    {
        var backend = fixture.Require();
        var dir = TestPaths.TempDir("gate-sbx");
        var policy = SandboxTestJobs.WritePolicy(dir, isolation: "container");
        var record = await new Gate.Core.GateCheckPipeline(backend).RunAsync(new Gate.Core.GateCheckRequest(SandboxTestJobs.ModelPath, policy, dir), null, TestContext.Current.CancellationToken);
        Assert.Equal(Gate.Core.Decision.GateDecision.Approve, record.Decision);
        var inspected = await fixture.Client.InspectImageAsync(fixture.Image!, TestContext.Current.CancellationToken);
        Assert.Equal(inspected!.ID, record.Sandbox.ImageId);
        Assert.Equal(IsolationLevel.Container, record.Sandbox.Isolation);
    }

    [Fact]
    public async Task Optional_gpu_falls_back_to_cpu_and_required_gpu_faults_on_an_engine_without_one()
    {
        var backend = fixture.Require();
        var dir = TestPaths.TempDir("gate-sbx");
        var job = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir)) with { UseGpu = true, RequireGpu = false };
        var optional = await backend.RunAsync(job, Path.Combine(dir, "e1"), new Progress<ProgressUpdate>(), TestContext.Current.CancellationToken);
        Assert.True(optional.Completed, optional.FaultReason);
        if (backend.GpuUnavailable is null) Assert.Skip("this engine provides GPUs (nvidia runtime), so there is no fallback to test");
        Assert.Contains("device driver", optional.Details!["gpuUnavailable"]!.GetValue<string>());

        var required = await backend.RunAsync(job with { RequireGpu = true }, Path.Combine(dir, "e2"), new Progress<ProgressUpdate>(), TestContext.Current.CancellationToken);
        Assert.False(required.Completed);
        Assert.Contains("device driver", required.FaultReason);
        AssertNothingLeftBehind();
    }

    [Fact]
    public async Task The_image_has_no_shell_and_runs_as_the_unprivileged_user()
    {
        fixture.Require();
        var img = (await fixture.Client.InspectImageAsync(fixture.Image!, TestContext.Current.CancellationToken))!;
        Assert.Equal("65534:65534", img.Config!.User);
        Assert.Contains(img.Config.Env!, e => e.StartsWith("DOTNET_ROOT=", StringComparison.Ordinal));
        var spec = ContainerSpec.Create(fixture.Image!, "/nonexistent-job", "/nonexistent-results", new(64L << 20, 1, TimeSpan.FromSeconds(5), 32), false, false, "test:0");
        spec.Entrypoint = ["/bin/sh"];
        spec.Cmd = ["-c", "true"];
        spec.HostConfig!.Binds = null!;
        var id = await fixture.Client.CreateContainerAsync(spec, TestContext.Current.CancellationToken);
        try
        {
            var e = await Assert.ThrowsAsync<Docker.DotNet.DockerApiException>(() => fixture.Client.StartContainerAsync(id, TestContext.Current.CancellationToken));
            Assert.Contains("/bin/sh", e.Message);
        }
        finally { await fixture.Client.RemoveContainerAsync(id, CancellationToken.None); }
    }

    [Fact]
    public async Task The_engine_going_away_mid_run_is_inconclusive_and_the_container_is_swept()
    {
        fixture.Require();
        var dir = TestPaths.TempDir("gate-sbx");
        var job = SandboxTestJobs.Job(SandboxTestJobs.WritePolicy(dir));
        using var proxy = new VanishingDockerProxy(fixture.Client.SocketPath, Path.Combine(dir, "docker.sock"));
        using var viaProxy = new DockerEngine(proxy.Path);
        var backend = new DockerBackend(viaProxy, fixture.Image) { InjectFault = "hang" };
        // The self-test runs first (through the proxy, which is still up); the proxy vanishes during the job's wait.
        await backend.SelfTestAsync(job.Limits, TestContext.Current.CancellationToken);
        proxy.VanishOnWait = true;
        var outcome = await backend.RunAsync(job, Path.Combine(dir, "evidence"), new Progress<ProgressUpdate>(), TestContext.Current.CancellationToken);

        Assert.False(outcome.Completed);
        Assert.Contains("engine went away", outcome.FaultReason);
        // The hanging container outlived the connection; the next run over a working connection removes it.
        await new DockerBackend(fixture.Client, fixture.Image).SweepAsync(TestContext.Current.CancellationToken);
        AssertNothingLeftBehind();
    }
}

/// <summary>
/// A unix-socket proxy in front of the real engine that, once armed, drops every connection (and stops listening)
/// as soon as a container wait request passes: to the client, the engine has gone away mid-run.
/// </summary>
internal sealed class VanishingDockerProxy : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly List<Socket> _open = [];
    private readonly string _target;
    public string Path { get; }
    public volatile bool VanishOnWait;

    public VanishingDockerProxy(string target, string path)
    {
        _target = target;
        Path = path;
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        _listener.Listen(16);
        _ = AcceptLoop();
    }

    private async Task AcceptLoop()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptAsync();
                var upstream = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await upstream.ConnectAsync(new UnixDomainSocketEndPoint(_target));
                lock (_open) { _open.Add(client); _open.Add(upstream); }
                _ = Pump(client, upstream, inspect: true);
                _ = Pump(upstream, client, inspect: false);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    private async Task Pump(Socket from, Socket to, bool inspect)
    {
        var buf = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int n = await from.ReceiveAsync(buf);
                if (n == 0) break;
                await to.SendAsync(buf.AsMemory(0, n));
                if (inspect && VanishOnWait && System.Text.Encoding.ASCII.GetString(buf, 0, Math.Min(n, 512)).Contains("/wait", StringComparison.Ordinal))
                {
                    await Task.Delay(300);
                    Dispose();
                    return;
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    public void Dispose()
    {
        try { _listener.Dispose(); } catch (ObjectDisposedException) { }
        lock (_open) { foreach (var s in _open) { try { s.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { } s.Dispose(); } _open.Clear(); }
        try { File.Delete(Path); } catch (IOException) { }
    }
}
