using System.CommandLine;
using Gate.Core;
using Gate.Core.Policy;
using Gate.Core.Report;
using Gate.Core.Trust;
using Spectre.Console;

namespace Gate.Cli;

/// <summary>
/// Shared CLI plumbing: usage errors exit 3, input errors print one clear message and exit 3, cancellation by
/// SIGINT/SIGTERM exits 130/143 after cleaning up, anything else exits 4.
/// </summary>
public static class Cli
{
    /// <summary>The signals of this invocation; null outside <see cref="InvokeAsync"/> (e.g. commands invoked by tests).</summary>
    private static SignalCancellation? signals;

    /// <summary>The process entry: SIGINT/SIGTERM cancel the command and give 130/143 once it has cleaned up.</summary>
    public static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        using var cancellation = new SignalCancellation();
        signals = cancellation;
        try { return await InvokeAsync(root, args, cancellation.Token); }
        finally { signals = null; }
    }

    /// <summary>
    /// Parses and runs one command line under the exit-code contract, cancelled by <paramref name="ct"/>. Without
    /// <see cref="Terminal.Capture"/> it prints to the process's streams; tests call it in-process through it.
    /// </summary>
    public static async Task<int> InvokeAsync(RootCommand root, string[] args, CancellationToken ct)
    {
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) Console.Error.WriteLine($"gate: {e.Message}");
            Console.Error.WriteLine("Run 'gate --help' (or 'gate <command> --help') for usage.");
            return ExitCodes.BadInput;
        }
        try
        {
            // Our own signal handling, not System.CommandLine's: it would return after 2 s, before the sandbox is removed.
            return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, Output = Console.Out, Error = Console.Error }, ct);
        }
        catch (Exception e)
        {
            return Report(e);
        }
    }

    /// <summary>Runs a command body with the exit-code contract applied to whatever it throws.</summary>
    public static async Task<int> Guard(Func<Task<int>> body)
    {
        try { return await body(); }
        catch (Exception e) { return Report(e); }
    }

    private static int Report(Exception e)
    {
        switch (e)
        {
            // Messages quote names from the model or policy: one inert line each, so no name can start a line of its own.
            case PolicyException pe:
                foreach (var error in pe.Errors) Console.Error.WriteLine($"error: {SafeText.Line(error.ToString(o => FlagOf(UserInput.DataOverride) + o))}");
                return ExitCodes.BadInput;
            case PolicyNotApprovedException pna:
                Console.Error.WriteLine($"error: {SafeText.Line(pna.Message)} Approve it with: gate policy approve {SafeText.Line(pna.PolicyPath)} --key KEY.pem");
                return ExitCodes.BadInput;
            case GateInputException gi:
                Console.Error.WriteLine($"error: {SafeText.Line(FlagOf(gi.Input) + gi.Message)}");
                return ExitCodes.BadInput;
            case GateComponentMissingException cm:
                Console.Error.WriteLine($"error: {SafeText.Line(cm.Message)}");
                return ExitCodes.BadInput;
            case OperationCanceledException when signals?.Received is { } signal:
                Console.Error.WriteLine($"gate: cancelled by {SignalCancellation.NameOf(signal)}: the sandbox was stopped and removed; no decision was written");
                return signals.ExitCode;
            default:
                Console.Error.WriteLine($"internal error ({e.GetType().Name}): {SafeText.Line(e.Message)}");
                if (Environment.GetEnvironmentVariable("GATE_DEBUG") == "1") Console.Error.WriteLine(e);
                else Console.Error.WriteLine("Set GATE_DEBUG=1 for details. Please report this.");
                return ExitCodes.InternalError;
        }
    }

    /// <summary>The flag that supplied the value an input error is about (Gate.Core names the value, never the flag), as a message prefix.</summary>
    private static string FlagOf(UserInput input) => input switch
    {
        UserInput.OutputFolder => "--out ",
        UserInput.PolicyHistory => "--policies: ",
        UserInput.DataOverride => "--data ",
        UserInput.ShardCount => "--shards: ",
        _ => "",
    };

    /// <summary>Parses repeated NAME=VALUE options into a dictionary; a malformed one is a usage error.</summary>
    public static Dictionary<string, string> ParsePairs(IEnumerable<string>? items, string option)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in items ?? [])
        {
            int eq = item.IndexOf('=');
            if (eq <= 0 || eq == item.Length - 1) throw new GateInputException($"{option} expects NAME=PATH, got '{item}'");
            d[item[..eq]] = item[(eq + 1)..];
        }
        return d;
    }

    public static IAnsiConsole Err => Terminal.Err;
}
