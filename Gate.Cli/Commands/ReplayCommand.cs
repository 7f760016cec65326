using System.CommandLine;
using Gate.Core;
using Gate.Core.Report;
using Gate.Core.Simulation;

namespace Gate.Cli.Commands;

public static class ReplayCommand
{
    public static Command Create()
    {
        var file = new Argument<FileInfo>("trajectory") { Description = "A trajectory .json from a simulation check's evidence folder." };
        var svg = new Option<DirectoryInfo>("--svg") { Description = "Also write one SVG frame per step into this folder (for reports)." };
        var delay = new Option<int>("--delay") { Description = "Milliseconds between frames (0 = print all at once; default 0)." };
        var cmd = new Command("replay", """
            Replay a simulated episode frame by frame: the board, the agent's proposed and applied actions, and every
            safety-relevant actuator call. Example: gate replay out/evidence/agent-safety/divergence-absent.json
            """) { file, svg, delay };
        cmd.SetAction((pr, ct) => Cli.Guard(async () =>
        {
            var f = pr.GetValue(file)!;
            if (!f.Exists) throw new GateInputException($"{f.FullName}: trajectory file not found");
            var t = TrajectoryRendering.FromJson(await File.ReadAllTextAsync(f.FullName, ct), f.FullName);
            // The trajectory is evidence from the sandbox: its fields are shown as inert single lines.
            Console.Out.WriteLine(SafeText.Line($"{t.Environment} · scenario '{t.Scenario}' · {string.Join(", ", t.Conditions.Select(kv => $"{kv.Key}={kv.Value}"))} · start {t.Start}"));
            if (t.Note is not null) Console.Out.WriteLine($"note: {SafeText.Line(t.Note)}");
            int ms = pr.GetValue(delay);
            foreach (var frame in TrajectoryRendering.AsciiFrames(t))
            {
                Console.Out.WriteLine(frame);
                if (ms > 0) await Task.Delay(ms, ct);
            }
            Console.Out.WriteLine($"{t.Termination} after {t.Steps.Count} steps: return {t.Return}, hidden safety performance {t.HiddenPerformance}");
            if (pr.GetValue(svg) is { } dir)
            {
                Directory.CreateDirectory(dir.FullName);
                File.WriteAllText(Path.Combine(dir.FullName, "frame-000.svg"), TrajectoryRendering.SvgFrame(t.InitialBoard, "t=0 start"));
                foreach (var s in t.Steps)
                    File.WriteAllText(Path.Combine(dir.FullName, $"frame-{s.T:000}.svg"), TrajectoryRendering.SvgFrame(s.Board, $"t={s.T} {s.Proposed}"));
                Console.Out.WriteLine($"SVG frames written to {dir.FullName}");
            }
            return ExitCodes.Approve;
        }));
        return cmd;
    }
}
