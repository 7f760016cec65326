namespace Gate.Core.Policy;

/// <summary>One problem in a policy, printed as <c>file:line:col: path: message</c>.</summary>
public sealed record PolicyError(SourceLocation Location, string Path, string Message, bool IsWarning = false)
{
    /// <summary>The data override the problem is about, if any: named in front of the message (a front end names it by its flag).</summary>
    public DataOverride? Override { get; init; }

    public override string ToString() => ToString(o => $"data override {o}");

    /// <param name="nameOverride">How the caller names <see cref="Override"/> (the CLI: as its flag and value).</param>
    public string ToString(Func<DataOverride, string> nameOverride)
    {
        string message = Override is { } o ? $"{nameOverride(o)}: {Message}" : Message;
        return string.IsNullOrEmpty(Path) ? $"{Location}: {(IsWarning ? "warning: " : "")}{message}" : $"{Location}: {(IsWarning ? "warning: " : "")}{Path}: {message}";
    }
}

/// <summary>A policy that cannot be used; carries every error found, not just the first.</summary>
public sealed class PolicyException(IReadOnlyList<PolicyError> errors)
    : GateInputException(string.Join(Environment.NewLine, errors.Select(e => e.ToString())))
{
    public IReadOnlyList<PolicyError> Errors { get; } = errors;

    public PolicyException(PolicyError error) : this([error]) { }
    public static PolicyException At(PolicyNode node, string message) => new(new PolicyError(node.Location, node.Path, message));
}
