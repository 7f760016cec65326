using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Gate.Sandbox.Protocol;

namespace Gate.Sandbox.Runner;

/// <summary>
/// Tries, from inside the sandbox, what the sandbox should prevent, and reports each attempt as blocked or
/// allowed with what happened. Allowed is not an error here: the host records the report in every decision.
/// </summary>
internal static class SelfTestProbes
{
    public static JsonObject Run(SelfTestRequest req)
    {
        var probes = new JsonArray
        {
            Tcp("network-loopback", req.LoopbackHost, req.LoopbackPort),
            Tcp("network-outside", req.OutsideHost, req.OutsidePort),
            RootFsWrite(),
            EnvCanary(req),
            HostProcessEnviron(),
            Pids(req.PidsLimit),
        };
        return new JsonObject { ["nonce"] = req.Nonce, ["uid"] = (long)Posix.geteuid(), ["probes"] = probes };
    }

    private static JsonObject Probe(string name, string target, bool blocked, string detail) => new()
    {
        ["name"] = name, ["target"] = target, ["outcome"] = blocked ? "blocked" : "allowed", ["detail"] = detail,
    };

    private static JsonObject Tcp(string name, string host, int port)
    {
        var target = $"{host}:{port}";
        try
        {
            using var client = new TcpClient();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            client.ConnectAsync(host, port, cts.Token).AsTask().GetAwaiter().GetResult();
            return Probe(name, target, false, "TCP connection established");
        }
        catch (OperationCanceledException) { return Probe(name, target, true, "no answer within 2 s"); }
        catch (SocketException e) { return Probe(name, target, true, $"{e.SocketErrorCode}: {e.Message}"); }
    }

    private static JsonObject RootFsWrite()
    {
        var path = $"/gate-selftest-{Guid.NewGuid():N}";
        try
        {
            File.WriteAllText(path, "x");
            File.Delete(path);
            return Probe("rootfs-write", path, false, "file created (and removed again)");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return Probe("rootfs-write", path, true, e.Message); }
    }

    private static JsonObject EnvCanary(SelfTestRequest req)
    {
        var seen = Environment.GetEnvironmentVariable(req.CanaryName);
        return Probe("host-environment", req.CanaryName, seen != req.CanaryValue,
            seen == req.CanaryValue ? "the host's canary variable is visible" : $"canary not visible; {Environment.GetEnvironmentVariables().Count} variables present");
    }

    private static JsonObject HostProcessEnviron()
    {
        int ppid = getppid();
        var target = $"/proc/{ppid}/environ";
        if (ppid <= 1) return Probe("host-process-environ", target, true, "no host process is visible (parent pid " + ppid + ")");
        try
        {
            var bytes = File.ReadAllBytes(target);
            return Probe("host-process-environ", target, false, $"read {bytes.Length} bytes of the parent's environment");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return Probe("host-process-environ", target, true, e.Message); }
    }

    /// <summary>Starts sleeping threads (each a task for the pids limit) until the limit stops it or the limit is clearly exceeded.</summary>
    private static JsonObject Pids(int limit)
    {
        int attempt = limit + 32;
        using var release = new ManualResetEventSlim(false);
        var threads = new List<Thread>();
        string? failure = null;
        try
        {
            for (int i = 0; i < attempt; i++)
            {
                var t = new Thread(() => release.Wait(), 64 * 1024) { IsBackground = true };
                t.Start();
                threads.Add(t);
            }
        }
        catch (Exception e) when (e is OutOfMemoryException or ThreadStartException or InvalidOperationException) { failure = e.GetType().Name + ": " + e.Message; }
        finally { release.Set(); }
        foreach (var t in threads) t.Join(TimeSpan.FromSeconds(5));
        return failure is null
            ? Probe("pids-limit", $"{attempt} threads (limit {limit})", false, $"started all {attempt} threads")
            : Probe("pids-limit", $"{attempt} threads (limit {limit})", true, $"stopped after {threads.Count} threads: {failure}");
    }

    [DllImport("libc")] private static extern int getppid();
}
