using Gate.Core.IO;
using System.Buffers;
using System.Text;
using System.Text.Unicode;
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
        using var fs = RegularFile.OpenRead(path, "policy file");
        if (fs.Length > MaxBytes) throw new PolicyException(new PolicyError(new(path, 1, 1), "", $"policy file is {fs.Length} bytes; the limit is {MaxBytes} (1 MiB)"));
        return Read(DecodeUtf8(RegularFile.ReadExactly(fs, 0, (int)fs.Length, "policy file", path), path), path);
    }

    /// <summary>
    /// Policy bytes as text: UTF-8, a leading byte-order mark accepted (Windows editors write one) and dropped, any
    /// other encoding refused at the line and column of the first byte that is not UTF-8.
    /// </summary>
    public static string DecodeUtf8(byte[] bytes, string fileName)
    {
        ReadOnlySpan<byte> b = bytes;
        if (b.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xFE]) || b.StartsWith((ReadOnlySpan<byte>)[0xFE, 0xFF]) || b.StartsWith((ReadOnlySpan<byte>)[0, 0, 0xFE, 0xFF]))
            throw new PolicyException(new PolicyError(new(fileName, 1, 1), "", "policy is UTF-16 or UTF-32 text (it starts with that byte-order mark); save it as UTF-8"));
        if (b.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) b = b[3..];
        var chars = new char[b.Length];
        if (Utf8.ToUtf16(b, chars, out int read, out int written, replaceInvalidSequences: false) == OperationStatus.Done)
            return new string(chars, 0, written);
        // `read` is where the first invalid sequence starts; everything before it is valid UTF-8.
        int lineStart = b[..read].LastIndexOf((byte)'\n') + 1;
        int line = b[..read].Count((byte)'\n') + 1, col = Encoding.UTF8.GetCharCount(b[lineStart..read]) + 1;
        throw new PolicyException(new PolicyError(new(fileName, line, col), "", $"byte 0x{b[read]:X2} is not valid UTF-8; a policy must be UTF-8 text"));
    }

    /// <summary>
    /// YAML allows only printable characters plus tab and line breaks. A NUL or other control character would
    /// otherwise reach a path or a name (and the terminal) unchanged, so it is refused where it stands.
    /// </summary>
    private static void RefuseControlCharacters(string text, string fileName)
    {
        int line = 1, col = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\n' || (c == '\r' && (i + 1 == text.Length || text[i + 1] != '\n'))) { line++; col = 1; continue; }
            bool printable = c is '\t' or '\r' or '\u0085' || (c >= ' ' && c != '\u007F' && (c < '\u0080' || c > '\u009F') && c is not ('\uFFFE' or '\uFFFF'));
            if (!printable)
                throw new PolicyException(new PolicyError(new(fileName, line, col), "", $"control character U+{(int)c:X4} is not allowed in a policy (only printable characters, tabs and line breaks)"));
            col++;
        }
    }

    /// <summary>Test hook: observes every YAML parse, so a test can prove a sandbox job parses none (it executes the bound plan).</summary>
    internal static readonly AsyncLocal<Action<string>?> ParseObserver = new();

    public static PolicyNode Read(string text, string fileName)
    {
        ParseObserver.Value?.Invoke(fileName);
        if (text.Length > MaxBytes) throw new PolicyException(new PolicyError(new(fileName, 1, 1), "", $"policy is larger than {MaxBytes} bytes (1 MiB)"));
        if (text.StartsWith('\uFEFF')) text = text[1..]; // a byte-order mark is not content
        RefuseControlCharacters(text, fileName);
        var scanner = new Scanner(new StringReader(text));
        var parser = new GuardedParser(scanner);
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
            var reason = e is UnreadableYamlException ? e.Message : e.InnerException?.Message ?? e.Message;
            // YamlDotNet prefixes its messages with "(Line: x, Col: y, ...)": keep only the reason.
            int close = reason.IndexOf("): ", StringComparison.Ordinal);
            if (reason.StartsWith('(') && close > 0) reason = reason[(close + 3)..];
            var at = new SourceLocation(fileName, (int)e.Start.Line, (int)e.Start.Column);
            // YamlDotNet places tab errors at the start of the enclosing mapping or scalar; point at the tab itself.
            if (reason.Contains("tab", StringComparison.OrdinalIgnoreCase) && IndentationTab(text, (int)e.Start.Line, (int)scanner.CurrentPosition.Line) is var (line, col))
                throw new PolicyException(new PolicyError(new(fileName, line, col), "", "YAML syntax error: a tab in the indentation; YAML indents with spaces only"));
            // "did not find expected ',' or ']'" is clearer with the bracket that is still open.
            if (e is not UnreadableYamlException && reason.Contains("flow", StringComparison.Ordinal) && parser.UnclosedFlow is var (bracket, start))
                reason += $" ('{bracket}' opened at line {start.Line}, column {start.Column} is not closed)";
            throw new PolicyException(new PolicyError(at, "", $"YAML syntax error: {reason}"));
        }
    }

    /// <summary>The last tab in a line's leading whitespace, searching from <paramref name="last"/> back to <paramref name="first"/> (1-based).</summary>
    private static (int Line, int Column)? IndentationTab(string text, int first, int last)
    {
        var lines = text.Split('\n');
        for (int l = Math.Min(last, lines.Length); l >= Math.Max(first, 1); l--)
        {
            var s = lines[l - 1];
            int indent = s.Length - s.TrimStart(' ', '\t').Length;
            int tab = s.IndexOf('\t', 0, indent);
            if (tab >= 0) return (l, tab + 1);
        }
        return null;
    }

    /// <summary>
    /// The YamlDotNet parser, with every exception it throws turned into a positioned syntax error. On some malformed
    /// input it throws more than <see cref="YamlException"/> (an unclosed flow mapping followed by more text ends
    /// in an InvalidOperationException from its scanner); all of it is about the input, none about Gate. The open
    /// collections are tracked so that such an error names the unclosed bracket.
    /// </summary>
    private sealed class GuardedParser(Scanner scanner) : IParser
    {
        private readonly Parser _inner = new(scanner);
        private readonly Stack<(bool Flow, char Bracket, Mark Start)> _open = new();

        public ParsingEvent? Current => _inner.Current;

        /// <summary>The innermost flow collection ('{' or '[') not yet closed, if any.</summary>
        public (char Bracket, Mark Start)? UnclosedFlow => _open.FirstOrDefault(o => o.Flow) is { Flow: true } o ? (o.Bracket, o.Start) : null;

        public bool MoveNext()
        {
            bool more;
            try { more = _inner.MoveNext(); }
            catch (Exception e) when (e is not YamlException and not OutOfMemoryException)
            {
                var at = scanner.CurrentPosition;
                throw UnclosedFlow is var (bracket, start)
                    ? new UnreadableYamlException(start, at, $"'{bracket}' is never closed (the YAML parser gave up at line {at.Line}, column {at.Column})", e)
                    : new UnreadableYamlException(at, at, $"the YAML parser cannot read the text here ({e.GetType().Name})", e);
            }
            switch (_inner.Current)
            {
                case MappingStart ms: _open.Push((ms.Style == MappingStyle.Flow, '{', ms.Start)); break;
                case SequenceStart ss: _open.Push((ss.Style == SequenceStyle.Flow, '[', ss.Start)); break;
                case MappingEnd or SequenceEnd when _open.Count > 0: _open.Pop(); break;
            }
            return more;
        }
    }

    private sealed class UnreadableYamlException(Mark start, Mark end, string message, Exception inner) : YamlException(start, end, message, inner)
    {
        public override string Message { get; } = message;
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
