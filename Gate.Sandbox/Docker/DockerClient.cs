using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gate.Sandbox.Docker;

/// <summary>Docker answered with an error status (the message is the engine's own).</summary>
public sealed class DockerApiException(HttpStatusCode status, string message) : Exception($"Docker engine: {(int)status} {message}")
{
    public HttpStatusCode Status { get; } = status;
}

/// <summary>The engine accepted the connection (or not) but did not answer in time: treated like an engine that is gone.</summary>
public sealed class DockerTimeoutException(string message) : IOException(message);

/// <summary>
/// A small Docker Engine API client over the unix socket (Docker.DotNet is not available here): exactly the calls
/// the sandbox needs. The API version is negotiated on first use (the lower of ours and the engine's).
/// </summary>
public sealed class DockerClient : IDisposable
{
    /// <summary>The newest API version we speak (Docker 20.10); DeviceRequests need ≥ 1.40.</summary>
    public const string PreferredApiVersion = "1.41";

    /// <summary>Connecting to the socket; a listener whose backlog is full never completes the connect.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(3);
    /// <summary>The first answer (version negotiation): an engine that accepts and never answers is found out quickly.</summary>
    public static readonly TimeSpan FirstAnswerTimeout = TimeSpan.FromSeconds(10);
    /// <summary>Any other call that is not a wait, a log stream or a build (those carry their own deadline).</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(60);

    private readonly HttpClient _http;
    private string? _version;
    private string? _unresponsive;

    public string SocketPath { get; }
    /// <summary>The engine's address as DOCKER_HOST spells it, for messages.</summary>
    public string Address => "unix://" + SocketPath;

    public DockerClient(string socketPath)
    {
        SocketPath = socketPath;
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = ConnectTimeout,
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch { socket.Dispose(); throw; }
            },
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        };
        // Long calls (wait, build, logs) carry their own cancellation; the default 100 s timeout would cut them.
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://docker/"), Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>DOCKER_HOST=unix:///path, else /var/run/docker.sock. Other schemes (tcp) are refused: the socket is the trust boundary.</summary>
    public static DockerClient FromEnvironment()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        if (string.IsNullOrEmpty(host)) return new DockerClient("/var/run/docker.sock");
        if (host.StartsWith("unix://", StringComparison.Ordinal)) return new DockerClient(host["unix://".Length..]);
        throw new Gate.Core.GateInputException($"DOCKER_HOST={host}: only unix:// sockets are supported");
    }

    public void Dispose() => _http.Dispose();

    /// <summary>True when an engine answers /_ping within <paramref name="timeout"/>.</summary>
    public async Task<bool> PingAsync(TimeSpan timeout, CancellationToken ct = default) => await WhyNotAnsweringAsync(timeout, ct).ConfigureAwait(false) is null;

    /// <summary>Null when an engine answers /_ping within <paramref name="timeout"/>; otherwise why not, in words.</summary>
    public async Task<string?> WhyNotAnsweringAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        if (!File.Exists(SocketPath)) return $"no engine socket at {SocketPath}";
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            using var resp = await _http.GetAsync("_ping", cts.Token).ConfigureAwait(false);
            if (!resp.IsSuccessStatusCode) return $"the engine on {Address} answered /_ping with {(int)resp.StatusCode}";
            if (resp.Headers.TryGetValues("API-Version", out var v)) _version ??= Negotiate(v.FirstOrDefault());
            return null;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return $"no engine answered on {Address} within {timeout.TotalSeconds:0.#} s"; }
        catch (Exception e) when (e is HttpRequestException or IOException or SocketException) { return $"no engine answers on {Address} ({e.Message})"; }
    }

    internal static string Negotiate(string? engine)
    {
        if (engine is null || !Version.TryParse(engine, out var ev)) return PreferredApiVersion;
        return ev < Version.Parse(PreferredApiVersion) ? engine : PreferredApiVersion;
    }

    private async Task<string> PrefixAsync(CancellationToken ct)
    {
        if (_version is null)
        {
            // An engine that left one first call unanswered is not asked again by this client: each call would wait again.
            if (_unresponsive is not null) throw new DockerTimeoutException(_unresponsive);
            HttpResponseMessage resp;
            try { resp = await WithinAsync(FirstAnswerTimeout, "GET /version", ct, t => _http.GetAsync("version", t)).ConfigureAwait(false); }
            catch (DockerTimeoutException e) { _unresponsive = e.Message; throw; }
            using var _ = resp;
            await EnsureOk(resp, ct).ConfigureAwait(false);
            var body = JsonNode.Parse(await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false));
            _version = Negotiate(body?["ApiVersion"]?.GetValue<string>());
        }
        return $"v{_version}/";
    }

    private static async Task EnsureOk(HttpResponseMessage resp, CancellationToken ct)
    {
        if (resp.IsSuccessStatusCode) return;
        var text = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        string message = text;
        try { message = JsonNode.Parse(text)?["message"]?.GetValue<string>() ?? text; } catch (JsonException) { }
        throw new DockerApiException(resp.StatusCode, message.Trim());
    }

    /// <summary>
    /// Runs one exchange with the engine under <paramref name="timeout"/> (infinite: the caller's token is the only
    /// bound). Our own timeout becomes <see cref="DockerTimeoutException"/>, an engine failure; the caller's
    /// cancellation stays an <see cref="OperationCanceledException"/>.
    /// </summary>
    private async Task<T> WithinAsync<T>(TimeSpan timeout, string what, CancellationToken ct, Func<CancellationToken, Task<T>> call)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (timeout != Timeout.InfiniteTimeSpan) cts.CancelAfter(timeout);
        try { return await call(cts.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new DockerTimeoutException($"no Docker engine answered on {Address} within {timeout.TotalSeconds:0.#} s ({what})");
        }
    }

    /// <summary>
    /// One API call. <paramref name="timeout"/> bounds everything up to the response headers (and the body, for
    /// <see cref="HttpCompletionOption.ResponseContentRead"/>); streaming bodies are bounded by the caller's token.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken ct,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead, TimeSpan? timeout = null)
    {
        var req = new HttpRequestMessage(method, await PrefixAsync(ct).ConfigureAwait(false) + path) { Content = content };
        var resp = await WithinAsync(timeout ?? CallTimeout, $"{method} /{path.Split('?')[0]}", ct, t => _http.SendAsync(req, completion, t)).ConfigureAwait(false);
        try { await EnsureOk(resp, ct).ConfigureAwait(false); }
        catch { resp.Dispose(); throw; }
        return resp;
    }

    private async Task<JsonNode?> JsonAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct, TimeSpan? timeout = null)
    {
        using var content = body is null ? null : new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var resp = await SendAsync(method, path, content, ct, timeout: timeout).ConfigureAwait(false);
        var text = await resp.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        return text.Length == 0 ? null : JsonNode.Parse(text);
    }

    public async Task<JsonObject> VersionAsync(CancellationToken ct = default) =>
        (JsonObject)(await JsonAsync(HttpMethod.Get, "version", null, ct).ConfigureAwait(false))!;

    /// <summary>The image's inspect document, or null when the engine has no such image.</summary>
    public async Task<JsonObject?> InspectImageAsync(string name, CancellationToken ct = default)
    {
        try { return (JsonObject?)await JsonAsync(HttpMethod.Get, $"images/{Uri.EscapeDataString(name)}/json", null, ct).ConfigureAwait(false); }
        catch (DockerApiException e) when (e.Status == HttpStatusCode.NotFound) { return null; }
    }

    /// <summary>The tags ("repo:tag") in <paramref name="repository"/> of images carrying the label key=value.</summary>
    public async Task<List<string>> ListImageTagsAsync(string repository, string label, CancellationToken ct = default)
    {
        var filters = Uri.EscapeDataString(new JsonObject { ["reference"] = new JsonArray(repository), ["label"] = new JsonArray(label) }.ToJsonString());
        var list = await JsonAsync(HttpMethod.Get, $"images/json?filters={filters}", null, ct).ConfigureAwait(false) as JsonArray ?? [];
        return list.OfType<JsonObject>().SelectMany(o => (o["RepoTags"] as JsonArray ?? []).Select(t => t?.GetValue<string>()))
            .OfType<string>().Where(t => t.StartsWith(repository + ":", StringComparison.Ordinal)).ToList();
    }

    /// <summary>Removes a tag (the image goes with its last tag). Never forced: false when a container still uses the image.</summary>
    public async Task<bool> RemoveImageAsync(string name, CancellationToken ct = default)
    {
        try { await JsonAsync(HttpMethod.Delete, $"images/{Uri.EscapeDataString(name)}", null, ct).ConfigureAwait(false); return true; }
        catch (DockerApiException e) when (e.Status == HttpStatusCode.NotFound) { return true; }
        catch (DockerApiException e) when (e.Status == HttpStatusCode.Conflict) { return false; }
    }

    /// <summary>Loads an image tarball (docker save format).</summary>
    public async Task LoadImageAsync(Stream tar, CancellationToken ct = default)
    {
        using var content = new StreamContent(tar);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-tar");
        using var resp = await SendAsync(HttpMethod.Post, "images/load?quiet=1", content, ct, timeout: TimeSpan.FromMinutes(10)).ConfigureAwait(false);
        await ReadJsonStreamAsync(resp, _ => { }, ct).ConfigureAwait(false);
    }

    /// <summary>Builds an image from a tar build context with no network; returns its ID ("sha256:…").</summary>
    public async Task<string> BuildImageAsync(Stream context, IEnumerable<string> tags, Action<string>? log, CancellationToken ct = default,
        IReadOnlyDictionary<string, string>? labels = null)
    {
        var query = string.Join("", tags.Select(t => "&t=" + Uri.EscapeDataString(t)));
        // Labels set by the build request, not the Dockerfile: they do not change the content the tag is hashed from.
        if (labels is { Count: > 0 })
            query += "&labels=" + Uri.EscapeDataString(new JsonObject(labels.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))).ToJsonString());
        using var content = new StreamContent(context);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-tar");
        // The engine answers only after it has read the whole context (~150 MB): a generous bound, not an infinite one.
        using var resp = await SendAsync(HttpMethod.Post, $"build?rm=1&forcerm=1&networkmode=none&pull=0{query}", content, ct,
            HttpCompletionOption.ResponseHeadersRead, TimeSpan.FromMinutes(10)).ConfigureAwait(false);
        string? id = null;
        await ReadJsonStreamAsync(resp, msg =>
        {
            if (msg["error"] is JsonNode err) throw new DockerApiException(HttpStatusCode.InternalServerError, "build failed: " + err);
            if (msg["aux"]?["ID"] is JsonNode aux) id = aux.GetValue<string>();
            if (msg["stream"] is JsonNode s) log?.Invoke(s.GetValue<string>().TrimEnd());
        }, ct).ConfigureAwait(false);
        return id ?? throw new DockerApiException(HttpStatusCode.InternalServerError, "build finished without an image ID");
    }

    private static async Task ReadJsonStreamAsync(HttpResponseMessage resp, Action<JsonObject> onMessage, CancellationToken ct)
    {
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(ct).ConfigureAwait(false));
        while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
            if (line.Length > 0 && JsonNode.Parse(line) is JsonObject o) onMessage(o);
    }

    public async Task<string> CreateContainerAsync(JsonObject spec, string? name = null, CancellationToken ct = default)
    {
        var path = "containers/create" + (name is null ? "" : "?name=" + Uri.EscapeDataString(name));
        var resp = await JsonAsync(HttpMethod.Post, path, spec, ct).ConfigureAwait(false);
        return resp?["Id"]?.GetValue<string>() ?? throw new DockerApiException(HttpStatusCode.InternalServerError, "create returned no Id");
    }

    public Task StartContainerAsync(string id, CancellationToken ct = default) => JsonAsync(HttpMethod.Post, $"containers/{id}/start", null, ct);

    /// <summary>Blocks until the container stops; returns its exit code. Only <paramref name="ct"/> (the caller's deadline) bounds it.</summary>
    public async Task<long> WaitContainerAsync(string id, CancellationToken ct = default)
    {
        var resp = await JsonAsync(HttpMethod.Post, $"containers/{id}/wait?condition=not-running", null, ct, Timeout.InfiniteTimeSpan).ConfigureAwait(false);
        return resp?["StatusCode"]?.GetValue<long>() ?? -1;
    }

    public async Task<JsonObject> InspectContainerAsync(string id, CancellationToken ct = default) =>
        (JsonObject)(await JsonAsync(HttpMethod.Get, $"containers/{id}/json", null, ct).ConfigureAwait(false))!;

    public async Task KillContainerAsync(string id, CancellationToken ct = default)
    {
        try { await JsonAsync(HttpMethod.Post, $"containers/{id}/kill", null, ct).ConfigureAwait(false); }
        catch (DockerApiException e) when (e.Status is HttpStatusCode.Conflict or HttpStatusCode.NotFound) { } // already stopped / gone
    }

    public async Task RemoveContainerAsync(string id, CancellationToken ct = default)
    {
        try { await JsonAsync(HttpMethod.Delete, $"containers/{id}?force=1&v=1", null, ct).ConfigureAwait(false); }
        catch (DockerApiException e) when (e.Status == HttpStatusCode.NotFound) { }
    }

    /// <summary>IDs and labels of containers (running or not) carrying the label key=value.</summary>
    public async Task<List<(string Id, JsonObject Labels)>> ListContainersAsync(string label, CancellationToken ct = default)
    {
        var filters = Uri.EscapeDataString(new JsonObject { ["label"] = new JsonArray(label) }.ToJsonString());
        var list = await JsonAsync(HttpMethod.Get, $"containers/json?all=1&filters={filters}", null, ct).ConfigureAwait(false) as JsonArray ?? [];
        return list.OfType<JsonObject>().Select(o => (o["Id"]!.GetValue<string>(), o["Labels"] as JsonObject ?? [])).ToList();
    }

    /// <summary>
    /// Follows a container's output (stdout and stderr, no TTY, so multiplexed in 8-byte-header frames) and hands
    /// each complete line to <paramref name="onLine"/> (true = stdout). Returns when the container's output ends.
    /// </summary>
    public async Task FollowLogsAsync(string id, Action<bool, string> onLine, CancellationToken ct = default)
    {
        using var resp = await SendAsync(HttpMethod.Get, $"containers/{id}/logs?follow=1&stdout=1&stderr=1", null, ct,
            HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        await using var stream = await resp.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var header = new byte[8];
        var pending = new[] { new StringBuilder(), new StringBuilder() };
        while (await ReadExactlyOrEndAsync(stream, header, ct).ConfigureAwait(false))
        {
            bool isStdout = header[0] != 2;
            int size = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)), 1 << 20);
            var payload = new byte[size];
            if (!await ReadExactlyOrEndAsync(stream, payload, ct).ConfigureAwait(false)) break;
            var sb = pending[isStdout ? 0 : 1];
            sb.Append(Encoding.UTF8.GetString(payload));
            int nl;
            while ((nl = IndexOf(sb, '\n')) >= 0)
            {
                onLine(isStdout, sb.ToString(0, nl).TrimEnd('\r'));
                sb.Remove(0, nl + 1);
            }
            // A runaway line without newlines is cut rather than buffered without bound.
            if (sb.Length > 64 * 1024) { onLine(isStdout, sb.ToString()); sb.Clear(); }
        }
        for (int i = 0; i < 2; i++) if (pending[i].Length > 0) onLine(i == 0, pending[i].ToString());
    }

    private static int IndexOf(StringBuilder sb, char c)
    {
        for (int i = 0; i < sb.Length; i++) if (sb[i] == c) return i;
        return -1;
    }

    private static async Task<bool> ReadExactlyOrEndAsync(Stream s, byte[] buffer, CancellationToken ct)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = await s.ReadAsync(buffer.AsMemory(read), ct).ConfigureAwait(false);
            if (n == 0) return false;
            read += n;
        }
        return true;
    }
}
