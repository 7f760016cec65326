namespace Gate.Core;

/// <summary>
/// Bad input from the user (policy, model, data, command line). The CLI maps it to exit code 3 and prints
/// <see cref="Exception.Message"/> alone, which must therefore name the place (file, line/column, tensor name)
/// and what was expected.
/// </summary>
public class GateInputException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A component Gate needs is not available (library, engine, GPU). Checks that need it become INCONCLUSIVE.</summary>
public class GateComponentMissingException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Exit codes of the gate CLI; part of its public contract for CI pipelines.</summary>
public static class ExitCodes
{
    public const int Approve = 0;
    public const int Reject = 1;
    public const int Inconclusive = 2;
    public const int BadInput = 3;
    public const int InternalError = 4;
    /// <summary>Cancelled by SIGINT (Ctrl-C) or SIGTERM: 128 + the signal's number, as shells report it. No decision is written.</summary>
    public const int Interrupted = 130, Terminated = 143;
}
