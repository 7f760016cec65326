using System.CommandLine;
using Gate.Core;
using Gate.Core.Model;
using Gate.Core.Policy;
using Gate.Core.Verification;

namespace Gate.Cli.Commands;

/// <summary>
/// <c>gate prove</c>: decides one VNN-LIB property for a model, VNN-COMP style. Exit codes follow the gate's:
/// 0 proved (unsat), 1 violated (sat, confirmed counterexample), 2 unknown or timeout, 3 bad input.
/// </summary>
public static class ProveCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model", "-m") { Description = "The ONNX model.", Required = true };
        var spec = new Option<FileInfo>("--spec", "-s") { Description = "The VNN-LIB property (its asserts describe a violation).", Required = true };
        var timeout = new Option<string>("--timeout", "-t") { Description = "Time limit: seconds (60) or a duration (30s, 5m). Default 60s." };
        var outFile = new Option<FileInfo>("--out", "-o") { Description = "Write the VNN-COMP result here (first line sat, unsat, unknown or timeout; for sat the counterexample)." };
        var method = new Option<string>("--method") { Description = "bab (default: attack, then branch and bound), crown or ibp (single bound, no splitting)." };
        var seed = new Option<ulong>("--seed") { Description = "Seed for the attack's random restarts (default 1)." };
        var cmd = new Command("prove", """
            Prove or refute a VNN-LIB property: a quick attack, then sound bound propagation (IBP/CROWN) with branch and bound.
            A counterexample is reported (sat) only after the production runtime reproduces it (ONNX Runtime when bound
            into this build, else the built-in engine; the output names which).
            Example: gate prove --model net.onnx --spec prop.vnnlib --timeout 60 --out result.txt
            """) { model, spec, timeout, outFile, method, seed };
        cmd.SetAction((pr, ct) => Cli.Guard(() =>
        {
            var m = OnnxModelLoader.Load(pr.GetValue(model)!.FullName);
            var property = VnnLib.Load(pr.GetValue(spec)!.FullName);
            var t = pr.GetValue(timeout) is { } text
                ? double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var secs) && secs > 0
                    ? TimeSpan.FromSeconds(secs)
                    : PolicyLoader.ParseDuration(text) ?? throw new GateInputException($"--timeout: '{text}' is not a number of seconds or a duration (30s, 5m)")
                : TimeSpan.FromSeconds(60);
            var how = (pr.GetValue(method) ?? "bab") switch
            {
                "bab" => ProofMethod.Bab, "crown" => ProofMethod.Crown, "ibp" => ProofMethod.Ibp,
                var other => throw new GateInputException($"--method: unknown method '{other}' (expected bab, crown or ibp)"),
            };
            using var confirm = Prover.OpenConfirmingRuntime(m);
            var prover = new Prover(m, confirm, new ProverOptions { Timeout = t, Method = how, Seed = pr.GetValue(seed) is var s and > 0 ? s : 1 });
            var result = prover.Prove(property, ct);
            // The prover answers "unknown" when cancelled; a signal is not an answer: exit 130/143, write no result.
            ct.ThrowIfCancellationRequested();
            var text2 = result.ToVnnComp();
            if (pr.GetValue(outFile) is { } f)
            {
                if (f.Directory is { Exists: false } dir) dir.Create();
                File.WriteAllText(f.FullName, text2);
            }
            Console.Out.Write(text2);
            Console.Error.WriteLine($"{result.Detail}; {result.Domains} sub-domain(s) in {result.Seconds:F2} s; counterexamples are confirmed on: {result.ConfirmedOn}");
            return Task.FromResult(result.Status switch
            {
                ProofStatus.Unsat => ExitCodes.Approve,
                ProofStatus.Sat => ExitCodes.Reject,
                _ => ExitCodes.Inconclusive,
            });
        }));
        return cmd;
    }
}
