using System.CommandLine;
using System.Text.Json.Nodes;
using Gate.Core;
using Gate.Core.Policy;
using Gate.Sandbox;
using Gate.Sandbox.Docker;
using Gate.Sandbox.Process;
using Spectre.Console;

namespace Gate.Cli.Commands;

/// <summary><c>gate sandbox selftest</c> and <c>gate sandbox build-image</c>.</summary>
public static class SandboxCommand
{
    /// <summary>The limits the stand-alone self-test runs under (the policy defaults).</summary>
    private static readonly ResourceLimits SelfTestLimits = new(2L << 30, 1, TimeSpan.FromSeconds(60), 256);

    public static Command Create()
    {
        var cmd = new Command("sandbox", "Inspect and prepare the sandbox that executes models.");
        cmd.Subcommands.Add(SelfTest());
        cmd.Subcommands.Add(BuildImage());
        cmd.Subcommands.Add(Bench());
        return cmd;
    }

    private static Command SelfTest()
    {
        var sandbox = new Option<string>("--sandbox") { Description = "Backend to test: docker, bubblewrap or process (default: auto, the one gate check would use)." };
        var json = new Option<bool>("--json") { Description = "Print the self-test report as JSON (as embedded in decision.json)." };
        var cmd = new Command("selftest", """
            Try, from inside the sandbox, what it must prevent: a TCP connection to a listener on the host's loopback
            and to an outside address, writing to the root filesystem, reading the host's environment, exceeding the
            pid limit. Prints each as blocked or allowed. Exit 0 when the self-test ran, 2 when it could not run.
            Example: gate sandbox selftest --sandbox docker
            """) { sandbox, json };
        cmd.SetAction((pr, ct) => Cli.Guard(async () =>
        {
            var requested = pr.GetValue(sandbox) ?? "auto";
            if (requested is not ("auto" or "docker" or "bubblewrap" or "process")) throw new GateInputException($"--sandbox: expected docker, bubblewrap or process, got '{requested}'");
            if (Sandboxes.Select(requested) is not RunnerBackend backend) throw new GateInputException("this backend has no self-test");
            var report = await backend.SelfTestAsync(SelfTestLimits, ct);
            if (pr.GetValue(json)) Console.Out.WriteLine(report.ToJsonString(Gate.Core.IO.GateJson.Options));
            else Print(report);
            return report["error"] is null ? ExitCodes.Approve : ExitCodes.Inconclusive;
        }));
        return cmd;
    }

    private static void Print(JsonObject report)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"Sandbox self-test — backend {Terminal.Show(report["backend"]?.ToString() ?? "?")}, isolation {Terminal.Show(report["isolation"]?.ToString() ?? "?")}");
        table.AddColumns("probe", "target", "outcome", "detail");
        foreach (var p in report["probes"]?.AsArray().OfType<JsonObject>() ?? [])
        {
            var outcome = p["outcome"]?.ToString() ?? "?";
            table.AddRow(Terminal.Show(p["name"]?.ToString() ?? ""), Terminal.Show(p["target"]?.ToString() ?? ""),
                outcome == "blocked" ? "[green]blocked[/]" : $"[yellow]{Terminal.Show(outcome)}[/]", Terminal.Show(p["detail"]?.ToString() ?? ""));
        }
        Terminal.Out.Write(table);
        if (report["error"] is { } err) Terminal.Out.MarkupLine($"[red]self-test could not run:[/] {Terminal.Show(err.ToString())}");
        if (report["outsideReachableFromHost"]?.GetValue<bool>() == false)
            Terminal.Out.MarkupLine("[grey]note: the host itself cannot reach the outside address, so 'blocked' there proves little.[/]");
    }

    private static Command BuildImage()
    {
        var runnerDir = new Option<DirectoryInfo>("--runner-dir") { Description = "Use this published runner folder (default: the runner built beside this gate)." };
        var export = new Option<DirectoryInfo>("--export") { Description = "Do not build: write the runner and .NET runtime into this folder (for docker/Dockerfile.cuda)." };
        var publish = new Option<bool>("--publish") { Description = "Publish Gate.Sandbox/Runner (Release) from the repository first and use that." };
        var prune = new Option<bool>("--prune") { Description = "Then remove the older runner images this gate build made (every build has its own, ~150 MB). Other checkouts' images and images a container still uses are kept." };
        var cmd = new Command("build-image", """
            Build the sandbox runner image offline (FROM scratch, no registry): the pinned Debian 13 runner rootfs
            (docker/rootfs/packages.lock, built by setup: C/C++ runtime and OpenSSL, an unprivileged user, no shell),
            the runner, the .NET runtime and the ONNX Runtime library. Tags it by content hash
            only (gate-sandbox-runner:<hash>, no :latest): by default from the runner beside this gate, which is
            the image this gate's docker sandbox asks for. An image built with --runner-dir or --publish has another
            tag; use it with GATE_SANDBOX_IMAGE=<tag>. Needs a Docker engine (DOCKER_HOST=unix://… or
            /var/run/docker.sock).
            Example: gate sandbox build-image --prune
            """) { runnerDir, publish, export, prune };
        cmd.SetAction((pr, ct) => Cli.Guard(async () =>
        {
            if (pr.GetValue(export) is { } exportDir)
            {
                var given = pr.GetValue(runnerDir)?.FullName;
                var from = given ?? RunnerImage.RunnerFilesFrom(AppContext.BaseDirectory);
                try { Console.Out.WriteLine($"{RunnerImage.Export(from, exportDir.FullName)} files written to {exportDir.FullName}"); }
                finally { if (given is null) Directory.Delete(from, recursive: true); }
                return ExitCodes.Approve;
            }
            using var client = DockerEngine.FromEnvironment();
            if (await client.WhyNotAnsweringAsync(TimeSpan.FromSeconds(5), ct) is { } silent)
                throw new GateComponentMissingException($"docker: {silent}");
            string? temp = null;
            var dir = pr.GetValue(runnerDir)?.FullName
                ?? (pr.GetValue(publish) ? RunnerImage.PublishRunner(FindRepoRoot(), m => Cli.Err.WriteLine(m)) : temp = RunnerImage.RunnerFilesFrom(AppContext.BaseDirectory));
            RunnerImage.Built built;
            try { built = await RunnerImage.BuildAsync(client, dir, m => Cli.Err.WriteLine(m), ct); }
            finally { if (temp is not null) Directory.Delete(temp, recursive: true); }
            Console.Out.WriteLine($"{built.Tag} {built.ImageId} ({built.Files} files, {built.Bytes / (1 << 20)} MiB{(built.HasOnnxRuntime ? "" : ", without ONNX Runtime")})");
            if (pr.GetValue(prune))
                foreach (var (tag, removed) in await RunnerImage.PruneAsync(client, built.Tag, ct))
                    Cli.Err.WriteLine(removed ? $"pruned {tag}" : $"kept {tag}: a container still uses it");
            return ExitCodes.Approve;
        }));
        return cmd;
    }

    private static Command Bench()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The ONNX model the job carries.", Required = true };
        var policy = new Option<FileInfo>("--policy", "-p") { Description = "The policy the job carries (its limits apply).", Required = true };
        var sandbox = new Option<string>("--sandbox") { Description = "docker, bubblewrap or process (default: all three)." };
        var runs = new Option<int>("--runs") { Description = "Measured runs per backend (default 20).", DefaultValueFactory = _ => 20 };
        var cmd = new Command("bench", """
            Measure sandbox overhead: median wall time of a job with no checks (stage, start, runner loads and verifies
            the model, results, remove), per backend, after one warm-up run.
            Example: gate sandbox bench --model examples/digits/digits-cnn.onnx --policy policies/digits-release.yaml
            """) { model, policy, sandbox, runs };
        cmd.SetAction((pr, ct) => Cli.Guard(async () =>
        {
            var p = PolicyLoader.Load(pr.GetValue(policy)!.FullName);
            var m = Gate.Core.Model.OnnxModelLoader.Load(pr.GetValue(model)!.FullName);
            var plan = Gate.Core.Plan.BoundPlan.Of(Gate.Core.Plan.CheckPlan.Create(p, m), []);
            var job = new Gate.Core.Sandbox.SandboxJob(pr.GetValue(model)!.FullName, plan, false, false, p.Spec.Sandbox.Limits);
            var names = pr.GetValue(sandbox) is { } one ? [one] : new[] { "docker", "bubblewrap", "process" };
            Console.Out.WriteLine("| backend | isolation | runs | median s | min s | p90 s |");
            Console.Out.WriteLine("|---|---|---|---|---|---|");
            foreach (var name in names)
            {
                var r = await SandboxBench.MeasureAsync(Sandboxes.Select(name), job, pr.GetValue(runs), ct);
                Console.Out.WriteLine(r.Fault is not null ? $"| {r.Backend} | {r.Isolation.Name()} | — | failed: {r.Fault} | | |"
                    : $"| {r.Backend} | {r.Isolation.Name()} | {r.Runs} | {r.MedianSeconds:F3} | {r.MinSeconds:F3} | {r.P90Seconds:F3} |");
            }
            return ExitCodes.Approve;
        }));
        return cmd;
    }

    private static string FindRepoRoot()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Gate.sln"))) return d.FullName;
        throw new GateInputException("cannot find the Gate repository (Gate.sln) to publish the runner from; pass --runner-dir");
    }
}
