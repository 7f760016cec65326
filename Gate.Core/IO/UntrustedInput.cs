using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gate.Core.IO;

/// <summary>
/// Reading artifacts someone else produced (envelopes, signed statements, keys) without being steered by them:
/// regular files only and size-capped before anything is parsed; JSON with duplicate keys refused, because parsers
/// disagree on which value wins, so one signed payload could say APPROVE to one verifier and REJECT to another;
/// strings that reach a terminal shown with their control characters escaped.
/// </summary>
public static class UntrustedInput
{
    public const int MaxJsonDepth = 64;

    /// <summary>
    /// The bytes of a regular file of at most <paramref name="maxBytes"/>. A device, FIFO or socket is refused before it
    /// is opened (reading /dev/zero never ends, opening a FIFO blocks until someone writes).
    /// </summary>
    public static byte[] ReadRegularFile(string path, long maxBytes, string what)
    {
        RequireRegularFile(path, what);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        // The length is checked again while reading: the file may grow between the check and the read.
        if (fs.Length > maxBytes) throw TooLarge(path, fs.Length, maxBytes, what);
        var buffer = new byte[Math.Min(fs.Length, maxBytes) + 1];
        int n = 0, read;
        while (n < buffer.Length && (read = fs.Read(buffer, n, buffer.Length - n)) > 0) n += read;
        if (n > maxBytes) throw TooLarge(path, n, maxBytes, what);
        return buffer[..n];
    }

    private static GateInputException TooLarge(string path, long bytes, long max, string what) =>
        new($"{path}: {bytes} bytes is too large for a {what} (at most {max} bytes are read)");

    /// <summary>
    /// Refuses a path that does not name an existing regular file; <paramref name="what"/> is a noun ("model file").
    /// Links to a regular file are followed: these are paths the user named on the command line.
    /// </summary>
    public static void RequireRegularFile(string path, string what)
    {
        if (Directory.Exists(path)) throw new GateInputException($"{path}: is a folder, not a regular file (expected the {what})");
        if (!File.Exists(path)) throw new GateInputException($"{path}: {what} not found");
        if (OperatingSystem.IsLinux() && FileType(path) is { } type && type != RegularFileType)
            throw new GateInputException($"{path}: not a regular file ({TypeName(type)}; expected the {what})");
    }

    /// <summary>JSON parsed without duplicate keys, nesting capped; <paramref name="source"/> names it in errors.</summary>
    public static JsonNode ParseJson(ReadOnlyMemory<byte> utf8, string source, Action<JsonElement>? precheck = null)
    {
        using (var doc = ParseJsonDocument(utf8, source, precheck)) { }
        return JsonNode.Parse(utf8.Span, documentOptions: new JsonDocumentOptions { MaxDepth = MaxJsonDepth })!;
    }

    /// <summary>
    /// As <see cref="ParseJson"/>, returning the document. <paramref name="precheck"/> runs before the duplicate-key
    /// walk, to refuse cheap-to-detect abuse (a million array entries) before anything visits every element.
    /// </summary>
    public static JsonDocument ParseJsonDocument(ReadOnlyMemory<byte> utf8, string source, Action<JsonElement>? precheck = null)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(utf8, new JsonDocumentOptions { AllowDuplicateProperties = true, MaxDepth = MaxJsonDepth }); }
        catch (JsonException e) { throw new GateInputException($"{source}: not valid JSON ({e.Message})"); }
        try
        {
            precheck?.Invoke(doc.RootElement);
            if (FirstDuplicateKey(doc.RootElement, "$") is { } dup)
                throw new GateInputException($"{source}: duplicate key '{Printable(dup.Key)}' at {Printable(dup.Path)} (a key may appear once per object: readers disagree on which value counts)");
            return doc;
        }
        catch { doc.Dispose(); throw; }
    }

    private static (string Key, string Path)? FirstDuplicateKey(JsonElement e, string path)
    {
        if (e.ValueKind == JsonValueKind.Object)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in e.EnumerateObject())
            {
                var at = $"{path}.{p.Name}";
                if (!seen.Add(p.Name)) return (p.Name, at);
                if (FirstDuplicateKey(p.Value, at) is { } d) return d;
            }
        }
        else if (e.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var item in e.EnumerateArray())
                if (FirstDuplicateKey(item, $"{path}[{i++}]") is { } d) return d;
        }
        return null;
    }

    /// <summary>The first C0/C1 control character (NUL, ESC, DEL, ...) in <paramref name="s"/>, or null.</summary>
    public static (int Index, char Char)? FirstControlChar(string s)
    {
        for (int i = 0; i < s.Length; i++) if (char.IsControl(s[i])) return (i, s[i]);
        return null;
    }

    /// <summary>Refuses a signed name or path with a control character: it would truncate a path at NUL or rewrite the terminal.</summary>
    public static string RequirePlainText(string s, string source, string where)
    {
        if (FirstControlChar(s) is { } c)
            throw new GateInputException($"{source}: {where}: control character U+{(int)c.Char:X4} at offset {c.Index} in '{Printable(s)}' (a signed name or path must be plain text)");
        return s;
    }

    /// <summary>The text with every control character shown as \uXXXX, safe to print.</summary>
    public static string Printable(string s)
    {
        if (FirstControlChar(s) is null) return s;
        var sb = new StringBuilder(s.Length + 16);
        foreach (var ch in s) sb.Append(char.IsControl(ch) ? $"\\u{(int)ch:x4}" : ch);
        return sb.ToString();
    }

    // statx(2) has one struct layout on every Linux architecture, unlike stat(2); stx_mode is a u16 at offset 28.
    private const int AtFdCwd = -100, StatxType = 0x1, StatxModeOffset = 28, TypeMask = 0xF000, RegularFileType = 0x8000;

    [DllImport("libc", SetLastError = true, EntryPoint = "statx")]
    private static extern int Statx(int dirfd, string path, int flags, uint mask, byte[] buffer);

    private static int? FileType(string path)
    {
        var buf = new byte[256];
        try { return Statx(AtFdCwd, path, 0, StatxType, buf) == 0 ? BitConverter.ToUInt16(buf, StatxModeOffset) & TypeMask : null; }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { return null; } // libc without statx: size caps still apply
    }

    private static string TypeName(int type) => type switch
    {
        0x1000 => "a FIFO", 0x2000 => "a character device", 0x6000 => "a block device", 0xC000 => "a socket", 0x4000 => "a folder", _ => "not a plain file",
    };
}
