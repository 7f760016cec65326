using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Gate.Core.Policy;

/// <summary>
/// Reads YAML into a <see cref="PolicyNode"/> tree with positions. Deliberately strict: one document, no anchors
/// or aliases (which also rules out alias bombs), no duplicate keys, no custom tags, a size and depth cap.
/// </summary>
public static class PolicyYamlReader
{
    public const int MaxBytes = 1 << 20;
    public const int MaxDepth = 64;
    public const int MaxNodes = 100_000;

    public static PolicyNode ReadFile(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new GateInputException($"{path}: policy file not found");
        if (info.Length > MaxBytes) throw new PolicyException(new PolicyError(new(path, 1, 1), "", $"policy file is {info.Length} bytes; the limit is {MaxBytes} (1 MiB)"));
        return Read(File.ReadAllText(path), path);
    }

    public static PolicyNode Read(string text, string fileName)
    {
        if (text.Length > MaxBytes) throw new PolicyException(new PolicyError(new(fileName, 1, 1), "", $"policy is larger than {MaxBytes} bytes (1 MiB)"));
        var parser = new Parser(new StringReader(text));
        int nodes = 0;
        try
        {
            parser.Consume<StreamStart>();
            if (parser.Accept<StreamEnd>(out _))
                throw new PolicyException(new PolicyError(new(fileName, 1, 1), "", "policy file is empty"));
            parser.Consume<DocumentStart>();
            var root = ReadNode(parser, fileName, "", 0, ref nodes);
            parser.Consume<DocumentEnd>();
            if (!parser.Accept<StreamEnd>(out _))
            {
                var loc = parser.Current!.Start;
                throw new PolicyException(new PolicyError(new(fileName, (int)loc.Line, (int)loc.Column), "", "more than one YAML document; a policy is exactly one"));
            }
            return root;
        }
        catch (YamlException e)
        {
            var reason = e.InnerException?.Message ?? e.Message;
            // YamlDotNet prefixes its messages with "(Line: x, Col: y, ...)": keep only the reason.
            int close = reason.IndexOf("): ", StringComparison.Ordinal);
            if (reason.StartsWith('(') && close > 0) reason = reason[(close + 3)..];
            throw new PolicyException(new PolicyError(new(fileName, (int)e.Start.Line, (int)e.Start.Column), "", $"YAML syntax error: {reason}"));
        }
    }

    private static SourceLocation Loc(string file, ParsingEvent ev) => new(file, (int)ev.Start.Line, (int)ev.Start.Column);

    private static PolicyNode ReadNode(IParser parser, string file, string path, int depth, ref int nodes)
    {
        if (depth > MaxDepth) throw new PolicyException(new PolicyError(Loc(file, parser.Current!), path, $"nesting deeper than {MaxDepth}"));
        if (++nodes > MaxNodes) throw new PolicyException(new PolicyError(Loc(file, parser.Current!), path, $"more than {MaxNodes} YAML nodes"));
        var ev = parser.Current!;
        if (ev is AnchorAlias alias)
            throw new PolicyException(new PolicyError(Loc(file, ev), path, $"YAML aliases (*{alias.Value}) are not allowed in policies"));
        if (ev is NodeEvent ne)
        {
            if (!ne.Anchor.IsEmpty) throw new PolicyException(new PolicyError(Loc(file, ev), path, $"YAML anchors (&{ne.Anchor}) are not allowed in policies"));
            if (!ne.Tag.IsEmpty && !ne.Tag.Value.StartsWith("tag:yaml.org,2002:", StringComparison.Ordinal))
                throw new PolicyException(new PolicyError(Loc(file, ev), path, $"YAML tag {ne.Tag} is not allowed in policies"));
        }
        switch (ev)
        {
            case Scalar s:
                parser.MoveNext();
                return new PolicyScalar { Location = Loc(file, s), Path = path, Value = s.Value, Quoted = s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded };
            case SequenceStart ss:
            {
                parser.MoveNext();
                var items = new List<PolicyNode>();
                while (!parser.TryConsume<SequenceEnd>(out _))
                    items.Add(ReadNode(parser, file, $"{path}[{items.Count}]", depth + 1, ref nodes));
                return new PolicySequence { Location = Loc(file, ss), Path = path, Items = items };
            }
            case MappingStart ms:
            {
                parser.MoveNext();
                var entries = new List<KeyValuePair<PolicyScalar, PolicyNode>>();
                var seen = new Dictionary<string, SourceLocation>();
                while (!parser.TryConsume<MappingEnd>(out _))
                {
                    var keyEv = parser.Current!;
                    if (keyEv is not Scalar ks)
                        throw new PolicyException(new PolicyError(Loc(file, keyEv), path, "mapping keys must be plain strings"));
                    var keyNode = (PolicyScalar)ReadNode(parser, file, path, depth + 1, ref nodes);
                    string childPath = path.Length == 0 ? ks.Value : $"{path}.{ks.Value}";
                    if (seen.TryGetValue(ks.Value, out var first))
                        throw new PolicyException(new PolicyError(keyNode.Location, childPath, $"duplicate key '{ks.Value}' (first defined at line {first.Line})"));
                    seen[ks.Value] = keyNode.Location;
                    var value = ReadNode(parser, file, childPath, depth + 1, ref nodes);
                    entries.Add(new(keyNode, value));
                }
                return new PolicyMapping { Location = Loc(file, ms), Path = path, Entries = entries };
            }
            default:
                throw new PolicyException(new PolicyError(Loc(file, ev), path, $"unexpected YAML event {ev.GetType().Name}"));
        }
    }
}
