namespace Gate.Core.Policy;

/// <summary>One problem in a policy, printed as <c>file:line:col: path: message</c>.</summary>
public sealed record PolicyError(SourceLocation Location, string Path, string Message, bool IsWarning = false)
{
    public override string ToString() =>
        string.IsNullOrEmpty(Path) ? $"{Location}: {(IsWarning ? "warning: " : "")}{Message}" : $"{Location}: {(IsWarning ? "warning: " : "")}{Path}: {Message}";
}

/// <summary>A policy that cannot be used; carries every error found, not just the first.</summary>
public sealed class PolicyException(IReadOnlyList<PolicyError> errors)
    : GateInputException(string.Join(Environment.NewLine, errors.Select(e => e.ToString())))
{
    public IReadOnlyList<PolicyError> Errors { get; } = errors;

    public PolicyException(PolicyError error) : this([error]) { }
    public static PolicyException At(PolicyNode node, string message) => new(new PolicyError(node.Location, node.Path, message));
}
