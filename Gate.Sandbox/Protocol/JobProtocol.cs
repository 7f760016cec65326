using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Gate.Core.Checks;
using Gate.Core.Decision;
using Gate.Core.Evidence;
using Gate.Core.Plan;
using Gate.Core.Runtime;
using Gate.Core.IO;

namespace Gate.Sandbox.Protocol;

/// <summary>
/// The job as the runner reads it from its read-only job folder (job.json). Every path is relative to that folder,
/// so the same manifest works at /job in a container and in a staging folder for the process backend.
/// </summary>
public sealed record JobManifest
{
    public const string FileName = "job.json";
    public const string KindChecks = "checks";
    public const string KindSelfTest = "selftest";
    /// <summary><c>gate run</c>: run the model on <see cref="Inputs"/>, write every output and capture as evidence.</summary>
    public const string KindRun = "run";
    /// <summary>The one result a run job returns; its evidence files are the tensors.</summary>
    public const string RunResultId = "run";

    public string Kind { get; init; } = KindChecks;
    public string Model { get; init; } = "";
    public string ModelSha256 { get; init; } = "";
    /// <summary>Checks jobs: the plan the host bound, its data paths relative to the job folder. No policy file is staged.</summary>
    public BoundPlan? Plan { get; init; }
    public bool UseGpu { get; init; }
    public bool RequireGpu { get; init; }
    public SelfTestRequest? SelfTest { get; init; }
    /// <summary>
    /// Fault-injection hook for the fault tests (crash, oom, hang, garbage, truncated). The runner honours it only
    /// when it was started with GATE_RUNNER_FAULTS=1, which only a backend built with fault injection enabled
    /// (tests) passes; a manifest alone cannot trigger it.
    /// </summary>
    public string? Fault { get; init; }
    /// <summary>Run jobs: model input name → relative path of its staged .npy.</summary>
    public Dictionary<string, string> Inputs { get; init; } = new(StringComparer.Ordinal);
    /// <summary>Run jobs: intermediate tensors to return besides the outputs.</summary>
    public List<string> Captures { get; init; } = [];
    /// <summary>Run jobs: builtin, onnxruntime or torch.</summary>
    public string Runtime { get; init; } = "builtin";
    /// <summary>Run jobs: also return each float input's gradient (<see cref="Gate.Core.Sandbox.ModelRunJob.InputGradients"/>).</summary>
    public bool InputGradients { get; init; }
}

/// <summary>
/// What the self-test probes: a loopback listener the host opened, an outside address, the host's canary variable.
/// <paramref name="Nonce"/> is fresh per self-test and must come back in the report: a canned report does not pass.
/// </summary>
public sealed record SelfTestRequest(string LoopbackHost, int LoopbackPort, string OutsideHost, int OutsidePort,
    string CanaryName, string CanaryValue, int PidsLimit, string Nonce = "");

/// <summary>results.json: written by the runner (temp file + rename) as its last act.</summary>
public sealed class RunnerResults
{
    public const string FileName = "results.json";
    public bool Completed { get; init; }
    public string? Error { get; init; }
    /// <summary>The failure was the job's input (model, tensors, names), not the sandbox: <c>gate run</c> exits 3 for it.</summary>
    public bool InputError { get; init; }
    public List<CheckResult> Results { get; init; } = [];
    public RuntimeInfo? Runtime { get; init; }
    public JsonObject? SelfTest { get; init; }
}

/// <summary>One line on the runner's stdout. Anything that does not parse as one is treated as a log line.</summary>
public sealed record ProgressLine(string CheckId, string Task, double Done, double Total, string? Unit,
    ProgressPhase Phase = ProgressPhase.Working, Verdict? Verdict = null);

public static class JobProtocol
{
    /// <summary>The decision record's options (camelCase, named floats) so results round-trip into decision.json unchanged.</summary>
    public static JsonSerializerOptions Json => GateJson.Options;

    private static readonly JsonSerializerOptions Compact = GateJson.Compact;

    /// <summary>Lines longer than this are not progress: they are cut and logged, never parsed.</summary>
    public const int MaxLineChars = 16 * 1024;

    public static string ProgressJson(ProgressUpdate u) =>
        JsonSerializer.Serialize(new { progress = new ProgressLine(u.CheckId, u.Task, u.Done, u.Total, u.Unit, u.Phase, u.Verdict) }, Compact);

    public static bool TryParseProgress(string line, out ProgressUpdate update)
    {
        update = default;
        if (line.Length > MaxLineChars || !line.StartsWith("{\"progress\"", StringComparison.Ordinal)) return false;
        try
        {
            var p = JsonNode.Parse(line)?["progress"]?.Deserialize<ProgressLine>(Compact);
            if (p is null || p.CheckId is null || p.Task is null || !double.IsFinite(p.Done) || !double.IsFinite(p.Total)) return false;
            update = new ProgressUpdate(p.CheckId, p.Task, p.Done, p.Total, p.Unit, p.Phase, p.Verdict);
            return true;
        }
        catch (JsonException) { return false; }
    }

    public static void WriteJsonAtomic<T>(string path, T value) => Gate.Core.IO.AtomicFile.Write(path, JsonSerializer.SerializeToUtf8Bytes(value, Json));

    public static T ReadJson<T>(string path) where T : class =>
        JsonSerializer.Deserialize<T>(File.ReadAllText(path), Json) ?? throw new InvalidDataException($"{Path.GetFileName(path)} is empty (null)");
}
