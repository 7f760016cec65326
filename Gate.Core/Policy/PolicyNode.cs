using System.Globalization;

namespace Gate.Core.Policy;

/// <summary>A place in a policy file, 1-based, for messages of the form file:line:col.</summary>
public readonly record struct SourceLocation(string File, int Line, int Column)
{
    public override string ToString() => $"{File}:{Line}:{Column}";
}

/// <summary>
/// The policy as a tree of YAML nodes that remember where they came from and their path from the root
/// (e.g. <c>spec.checks[2].threat.epsilon</c>). Schema validation, binding and the governance tools all work on it.
/// </summary>
public abstract class PolicyNode
{
    public required SourceLocation Location { get; init; }
    public required string Path { get; init; }

    /// <summary>The node as plain data: dictionaries, lists, strings, longs, doubles, bools and nulls.</summary>
    public abstract object? ToPlain();
}

public sealed class PolicyMapping : PolicyNode
{
    public required IReadOnlyList<KeyValuePair<PolicyScalar, PolicyNode>> Entries { get; init; }

    public PolicyNode? this[string key]
    {
        get
        {
            KeyReadObserver.Value?.Invoke(this, key);
            return Entries.FirstOrDefault(e => e.Key.Value == key).Value;
        }
    }

    /// <summary>Test hook: observes every key a binder reads, so a test can prove each one is declared in the schema.</summary>
    internal static readonly AsyncLocal<Action<PolicyMapping, string>?> KeyReadObserver = new();
    public bool Has(string key) => this[key] is not null;
    public IEnumerable<string> Keys => Entries.Select(e => e.Key.Value);
    public override object? ToPlain() => Entries.ToDictionary(e => e.Key.Value, e => e.Value.ToPlain());
}

public sealed class PolicySequence : PolicyNode
{
    public required IReadOnlyList<PolicyNode> Items { get; init; }
    public override object? ToPlain() => Items.Select(i => i.ToPlain()).ToList();
}

public enum ScalarKind { Null, Bool, Int, Float, String }

/// <summary>
/// A scalar with its YAML 1.2 core-schema type: plain <c>true</c>/<c>false</c> are booleans, plain numbers are
/// numbers, plain <c>null</c>/<c>~</c>/empty is null; anything quoted is a string.
/// </summary>
public sealed class PolicyScalar : PolicyNode
{
    public required string Value { get; init; }
    public required bool Quoted { get; init; }

    public ScalarKind Kind
    {
        get
        {
            if (Quoted) return ScalarKind.String;
            if (Value is "" or "~" or "null" or "Null" or "NULL") return ScalarKind.Null;
            if (Value is "true" or "True" or "TRUE" or "false" or "False" or "FALSE") return ScalarKind.Bool;
            if (long.TryParse(Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)) return ScalarKind.Int;
            if (IsFloat(Value)) return ScalarKind.Float;
            return ScalarKind.String;
        }
    }

    private static bool IsFloat(string v) =>
        v is ".inf" or "+.inf" or "-.inf" or ".nan" or ".NaN" ||
        (v.Length > 0 && (char.IsDigit(v[0]) || v[0] is '-' or '+' or '.') &&
         double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out _));

    public bool IsNumber => Kind is ScalarKind.Int or ScalarKind.Float;

    public double AsDouble() => Value switch
    {
        ".inf" or "+.inf" => double.PositiveInfinity,
        "-.inf" => double.NegativeInfinity,
        ".nan" or ".NaN" => double.NaN,
        _ => double.Parse(Value, NumberStyles.Float, CultureInfo.InvariantCulture),
    };

    public long AsLong() => long.Parse(Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
    public bool AsBool() => Value is "true" or "True" or "TRUE";

    public override object? ToPlain() => Kind switch
    {
        ScalarKind.Null => null,
        ScalarKind.Bool => AsBool(),
        ScalarKind.Int => AsLong(),
        ScalarKind.Float => AsDouble(),
        _ => Value,
    };
}
