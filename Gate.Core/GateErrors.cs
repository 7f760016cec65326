namespace Gate.Core;

/// <summary>
/// Bad input from the user (policy, model, data, command line). The CLI maps it to exit code 3 and prints
/// <see cref="Exception.Message"/> alone, which must therefore name the place (file, line/column, tensor name)
/// and what was expected.
/// </summary>
public class GateInputException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The value a front end supplied that the message is about, if any: the CLI names it by its flag, Gate.Core never does.</summary>
    public UserInput Input { get; init; }
}

/// <summary>Values a caller of Gate.Core supplies from outside the policy (a front end spells each its own way, e.g. a CLI flag).</summary>
public enum UserInput { Unspecified, OutputFolder, PolicyHistory, DataOverride, ShardCount }

/// <summary>A component Gate needs is not available (library, engine, GPU). Checks that need it become INCONCLUSIVE.</summary>
public class GateComponentMissingException(string message, Exception? inner = null) : Exception(message, inner);
