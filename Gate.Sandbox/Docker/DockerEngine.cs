using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Text.Json;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Gate.Sandbox.Docker;

/// <summary>The engine accepted the connection (or not) but did not answer in time: treated like an engine that is gone.</summary>
public sealed class DockerTimeoutException(string message) : IOException(message);

/// <summary>
/// The Docker engine as the sandbox uses it, through Docker.DotNet (Docker.DotNet.Enhanced): exactly the calls the
/// sandbox needs, each under a deadline so that an engine that never answers cannot hang gate. The API version is
/// negotiated on first use (the lower of ours and the engine's). Failures reach callers in three shapes only:
/// <see cref="DockerApiException"/> (the engine said no), <see cref="IOException"/> (no engine, or it went away or
/// went silent: <see cref="DockerTimeoutException"/>), and <see cref="OperationCanceledException"/> for the caller's own cancellation.
/// </summary>
public sealed class DockerEngine : IDisposable
{
    /// <summary>The newest API version we speak (Docker 20.10); DeviceRequests need ≥ 1.40.</summary>
    public const string PreferredApiVersion = "1.41";

    /// <summary>Connecting to the socket; a listener whose backlog is full never completes the connect.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(3);
    /// <summary>The first answer (version negotiation): an engine that accepts and never answers is found out quickly.</summary>
    public static readonly TimeSpan FirstAnswerTimeout = TimeSpan.FromSeconds(10);
    /// <summary>Any other call that is not a wait, a log stream or a build (those carry their own deadline).</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(60);
    /// <summary>Building or loading an image: the engine answers only after reading the whole context (~150 MB).</summary>
    public static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(10);

    // Unversioned: the engine's own API version (used for /_ping and /version only, to negotiate).
    private readonly DockerClient _probe;
    private DockerClient? _client;
    private string? _unresponsive;

    public string SocketPath { get; }
    /// <summary>The engine's address as DOCKER_HOST spells it, for messages.</summary>
    public string Address => "unix://" + SocketPath;

    public DockerEngine(string socketPath)
    {
        SocketPath = socketPath;
        _probe = Connect(null);
    }

    /// <summary>
    /// A library client on the socket. Its own timeout is infinite: every call here carries its own deadline (waits,
    /// log streams and builds must not be cut at a fixed 100 s).
    /// </summary>
    private DockerClient Connect(System.Version? api)
    {
        var builder = new DockerClientBuilder().WithEndpoint(new Uri(Address)).WithTimeout(Timeout.InfiniteTimeSpan);
        if (api is not null) builder = builder.WithApiVersion(api);
        return builder.Build();
    }

    /// <summary>DOCKER_HOST=unix:///path, else /var/run/docker.sock. Other schemes (tcp) are refused: the socket is the trust boundary.</summary>
    public static DockerEngine FromEnvironment()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        if (string.IsNullOrEmpty(host)) return new DockerEngine("/var/run/docker.sock");
        if (host.StartsWith("unix://", StringComparison.Ordinal)) return new DockerEngine(host["unix://".Length..]);
        throw new Gate.Core.GateInputException($"DOCKER_HOST={host}: only unix:// sockets are supported");
    }

    public void Dispose()
    {
        _client?.Dispose();
        _probe.Dispose();
    }

    /// <summary>True when an engine answers /_ping within <paramref name="timeout"/>.</summary>
    public async Task<bool> PingAsync(TimeSpan timeout, CancellationToken ct = default) => await WhyNotAnsweringAsync(timeout, ct).ConfigureAwait(false) is null;

    /// <summary>Null when an engine answers /_ping within <paramref name="timeout"/>; otherwise why not, in words.</summary>
    public async Task<string?> WhyNotAnsweringAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        if (!File.Exists(SocketPath)) return $"no engine socket at {SocketPath}";
        try
        {
            await WithinAsync(timeout, "GET /_ping", ct, t => _probe.System.PingAsync(t)).ConfigureAwait(false);
            return null;
        }
        catch (DockerTimeoutException) { return $"no engine answered on {Address} within {timeout.TotalSeconds:0.#} s"; }
        catch (DockerApiException e) { return $"the engine on {Address} answered /_ping with {(int)e.StatusCode}"; }
        catch (IOException e) { return $"no engine answers on {Address} ({e.Message})"; }
    }

    internal static string Negotiate(string? engine)
    {
        if (engine is null || !System.Version.TryParse(engine, out var ev)) return PreferredApiVersion;
        return ev < System.Version.Parse(PreferredApiVersion) ? engine : PreferredApiVersion;
    }

    /// <summary>The versioned client, negotiated on first use with one bounded /version call.</summary>
    private async Task<DockerClient> ClientAsync(CancellationToken ct)
    {
        if (_client is not null) return _client;
        // An engine that left one first call unanswered is not asked again by this engine object: each call would wait again.
        if (_unresponsive is not null) throw new DockerTimeoutException(_unresponsive);
        VersionResponse version;
        try { version = await WithinAsync(FirstAnswerTimeout, "GET /version", ct, t => _probe.System.GetVersionAsync(t)).ConfigureAwait(false); }
        catch (DockerTimeoutException e) { _unresponsive = e.Message; throw; }
        return _client ??= Connect(System.Version.Parse(Negotiate(version.APIVersion)));
    }

    /// <summary>
    /// Runs one exchange with the engine under <paramref name="timeout"/> (infinite: the caller's token is the only
    /// bound). Our own deadline becomes <see cref="DockerTimeoutException"/>, an engine failure; the caller's
    /// cancellation stays an <see cref="OperationCanceledException"/>; a transport failure becomes an <see cref="IOException"/>.
    /// The wait itself is bounded here too (WaitAsync), so even a call that ignored its token could not hang gate.
    /// </summary>
    private async Task<T> WithinAsync<T>(TimeSpan timeout, string what, CancellationToken ct, Func<CancellationToken, Task<T>> call)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (timeout != Timeout.InfiniteTimeSpan) cts.CancelAfter(timeout);
        try
        {
            var task = call(cts.Token);
            return timeout == Timeout.InfiniteTimeSpan ? await task.WaitAsync(ct).ConfigureAwait(false)
                : await task.WaitAsync(timeout + TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException && !ct.IsCancellationRequested)
        {
            throw new DockerTimeoutException($"no Docker engine answered on {Address} within {timeout.TotalSeconds:0.#} s ({what})");
        }
        catch (Exception e) when (e is HttpRequestException or SocketException)
        {
            throw new IOException($"{what}: {e.Message}{(e.InnerException is { } inner ? $" ({inner.Message})" : "")}", e);
        }
    }

    private Task WithinAsync(TimeSpan timeout, string what, CancellationToken ct, Func<CancellationToken, Task> call) =>
        WithinAsync(timeout, what, ct, async t => { await call(t).ConfigureAwait(false); return true; });

    /// <summary>One versioned call under <see cref="CallTimeout"/> (or <paramref name="timeout"/>).</summary>
    private async Task<T> CallAsync<T>(string what, CancellationToken ct, Func<DockerClient, CancellationToken, Task<T>> call, TimeSpan? timeout = null)
    {
        var client = await ClientAsync(ct).ConfigureAwait(false);
        return await WithinAsync(timeout ?? CallTimeout, what, ct, t => call(client, t)).ConfigureAwait(false);
    }

    private async Task CallAsync(string what, CancellationToken ct, Func<DockerClient, CancellationToken, Task> call, TimeSpan? timeout = null)
    {
        var client = await ClientAsync(ct).ConfigureAwait(false);
        await WithinAsync(timeout ?? CallTimeout, what, ct, t => call(client, t)).ConfigureAwait(false);
    }

    /// <summary>The engine's own message from an error response (its JSON "message"), for reasons a person reads.</summary>
    public static string MessageOf(DockerApiException e)
    {
        try
        {
            using var doc = JsonDocument.Parse(e.ResponseBody ?? "");
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("message", out var m) && m.GetString() is { } s)
                return $"Docker engine: {(int)e.StatusCode} {s.Trim()}";
        }
        catch (JsonException) { }
        return $"Docker engine: {(int)e.StatusCode} {e.ResponseBody?.Trim()}";
    }

    public Task<VersionResponse> VersionAsync(CancellationToken ct = default) =>
        CallAsync("GET /version", ct, (c, t) => c.System.GetVersionAsync(t));

    /// <summary>The image's inspect document, or null when the engine has no such image.</summary>
    public async Task<ImageInspectResponse?> InspectImageAsync(string name, CancellationToken ct = default)
    {
        try { return await CallAsync("GET /images/json", ct, (c, t) => c.Images.InspectImageAsync(name, t)).ConfigureAwait(false); }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound) { return null; }
    }

    /// <summary>The tags ("repo:tag") in <paramref name="repository"/> of images carrying the label key=value.</summary>
    public async Task<List<string>> ListImageTagsAsync(string repository, string label, CancellationToken ct = default)
    {
        var filters = new Dictionary<string, IDictionary<string, bool>>
        {
            ["reference"] = new Dictionary<string, bool> { [repository] = true },
            ["label"] = new Dictionary<string, bool> { [label] = true },
        };
        var list = await CallAsync("GET /images/json", ct, (c, t) => c.Images.ListImagesAsync(new ImagesListParameters { Filters = filters }, t)).ConfigureAwait(false);
        return list.SelectMany(i => i.RepoTags ?? []).Where(t => t.StartsWith(repository + ":", StringComparison.Ordinal)).ToList();
    }

    /// <summary>Removes a tag (the image goes with its last tag). Never forced: false when a container still uses the image.</summary>
    public async Task<bool> RemoveImageAsync(string name, CancellationToken ct = default)
    {
        try { await CallAsync("DELETE /images", ct, (c, t) => c.Images.DeleteImageAsync(name, new ImageDeleteParameters(), t)).ConfigureAwait(false); return true; }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound) { return true; }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.Conflict) { return false; }
    }

    /// <summary>Builds an image from a tar build context with no network and no pull; returns its ID ("sha256:…").</summary>
    public async Task<string> BuildImageAsync(Stream context, IEnumerable<string> tags, Action<string>? log, CancellationToken ct = default,
        IReadOnlyDictionary<string, string>? labels = null)
    {
        var parameters = new ImageBuildParameters
        {
            Tags = tags.ToList(), Remove = true, ForceRemove = true, NetworkMode = "none", Pull = "0",
            // Labels set by the build request, not the Dockerfile: they do not change the content the tag is hashed from.
            Labels = labels?.ToDictionary(kv => kv.Key, kv => kv.Value),
        };
        string? id = null, error = null;
        var progress = new Inline<JSONMessage>(msg =>
        {
            if (msg.Error is { } err) error ??= err.Message ?? "unknown error";
            if (msg.Aux is { } aux && aux.ExtensionData?.TryGetValue("ID", out var v) == true) id = v?.ToString();
            if (msg.Stream is { } s) log?.Invoke(s.TrimEnd());
        });
        await CallAsync("POST /build", ct, (c, t) => c.Images.BuildImageFromDockerfileAsync(parameters, context, null, null, progress, t), BuildTimeout).ConfigureAwait(false);
        if (error is not null) throw new DockerApiException(HttpStatusCode.InternalServerError, $"{{\"message\":{JsonSerializer.Serialize("build failed: " + error)}}}");
        return id ?? throw new DockerApiException(HttpStatusCode.InternalServerError, "{\"message\":\"build finished without an image ID\"}");
    }

    /// <summary>IProgress that reports synchronously on the caller's thread (Progress&lt;T&gt; would post to the thread pool, after the call returned).</summary>
    private sealed class Inline<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    public async Task<string> CreateContainerAsync(CreateContainerParameters spec, CancellationToken ct = default)
    {
        var created = await CallAsync("POST /containers/create", ct, (c, t) => c.Containers.CreateContainerAsync(spec, t)).ConfigureAwait(false);
        return created.ID ?? throw new DockerApiException(HttpStatusCode.InternalServerError, "{\"message\":\"create returned no Id\"}");
    }

    public Task StartContainerAsync(string id, CancellationToken ct = default) =>
        CallAsync("POST /containers/start", ct, (c, t) => c.Containers.StartContainerAsync(id, new ContainerStartParameters(), t));

    /// <summary>Blocks until the container stops; returns its exit code. Only <paramref name="ct"/> (the caller's deadline) bounds it.</summary>
    public async Task<long> WaitContainerAsync(string id, CancellationToken ct = default) =>
        (await CallAsync("POST /containers/wait", ct, (c, t) => c.Containers.WaitContainerAsync(id, t), Timeout.InfiniteTimeSpan).ConfigureAwait(false)).StatusCode;

    public Task<ContainerInspectResponse> InspectContainerAsync(string id, CancellationToken ct = default) =>
        CallAsync("GET /containers/json", ct, (c, t) => c.Containers.InspectContainerAsync(id, t));

    public async Task KillContainerAsync(string id, CancellationToken ct = default)
    {
        try { await CallAsync("POST /containers/kill", ct, (c, t) => c.Containers.KillContainerAsync(id, new ContainerKillParameters(), t)).ConfigureAwait(false); }
        catch (DockerApiException e) when (e.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.NotFound) { } // already stopped / gone
    }

    public async Task RemoveContainerAsync(string id, CancellationToken ct = default)
    {
        try
        {
            await CallAsync("DELETE /containers", ct, (c, t) => c.Containers.RemoveContainerAsync(id,
                new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, t)).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound) { }
    }

    /// <summary>IDs and labels of containers (running or not) carrying the label key=value.</summary>
    public async Task<List<(string Id, IDictionary<string, string> Labels)>> ListContainersAsync(string label, CancellationToken ct = default)
    {
        var parameters = new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [label] = true } },
        };
        var list = await CallAsync("GET /containers/json", ct, (c, t) => c.Containers.ListContainersAsync(parameters, t)).ConfigureAwait(false);
        return list.Select(o => (o.ID, o.Labels ?? (IDictionary<string, string>)new Dictionary<string, string>())).ToList();
    }

    /// <summary>
    /// Follows a container's output (stdout and stderr, no TTY, so multiplexed) and hands each complete line to
    /// <paramref name="onLine"/> (true = stdout). Returns when the container's output ends. Lines are capped: a
    /// runaway line without newlines is cut rather than buffered without bound.
    /// </summary>
    public async Task FollowLogsAsync(string id, Action<bool, string> onLine, CancellationToken ct = default)
    {
        using var stream = await CallAsync("GET /containers/logs", ct, (c, t) => c.Containers.GetContainerLogsAsync(id,
            new ContainerLogsParameters { Follow = true, ShowStdout = true, ShowStderr = true }, t)).ConfigureAwait(false);
        var buffer = new byte[64 * 1024];
        var pending = new[] { new System.Text.StringBuilder(), new System.Text.StringBuilder() };
        var decoders = new[] { System.Text.Encoding.UTF8.GetDecoder(), System.Text.Encoding.UTF8.GetDecoder() };
        var chars = new char[System.Text.Encoding.UTF8.GetMaxCharCount(buffer.Length)];
        while (true)
        {
            MultiplexedStream.ReadResult read;
            try { read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, ct).ConfigureAwait(false); }
            catch (Exception e) when (e is HttpRequestException or SocketException) { throw new IOException($"GET /containers/logs: {e.Message}", e); }
            if (read.EOF) break;
            bool isStdout = read.Target != MultiplexedStream.TargetStream.StandardError;
            int i = isStdout ? 0 : 1;
            var sb = pending[i];
            int n = decoders[i].GetChars(buffer, 0, read.Count, chars, 0);
            sb.Append(chars, 0, n);
            int nl;
            while ((nl = IndexOf(sb, '\n')) >= 0)
            {
                onLine(isStdout, sb.ToString(0, nl).TrimEnd('\r'));
                sb.Remove(0, nl + 1);
            }
            if (sb.Length > 64 * 1024) { onLine(isStdout, sb.ToString()); sb.Clear(); }
        }
        for (int i = 0; i < 2; i++) if (pending[i].Length > 0) onLine(i == 0, pending[i].ToString());
    }

    private static int IndexOf(System.Text.StringBuilder sb, char c)
    {
        for (int i = 0; i < sb.Length; i++) if (sb[i] == c) return i;
        return -1;
    }
}
