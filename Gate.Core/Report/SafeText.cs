using System.Globalization;
using System.Text;

namespace Gate.Core.Report;

/// <summary>
/// Makes text that Gate did not write itself inert wherever it is shown: operator, domain, tensor, graph and metadata
/// names from the model, check summaries and reasons, anything a sandbox sent back. A model must not be able to
/// colour a terminal, plant an OSC 8 hyperlink, move the cursor, reorder text with bidi overrides or start a line of
/// its own ("Decision: APPROVE"). Every such character is shown as a visible <c>\uXXXX</c> escape instead: the
/// payload stays readable for whoever investigates, and in JSON text the escape even means the same character.
/// This is the one sanitiser; the terminal, summary.md, junit.xml and report.html all use it.
/// </summary>
public static class SafeText
{
    /// <summary>One line: every control, format (bidi, zero-width), separator and lone surrogate character is escaped, newlines and tabs included.</summary>
    public static string Line(string? text) => Escape(text, keepNewlines: false);

    /// <summary>Several lines: as <see cref="Line"/>, but newline and tab stay (for multi-line output Gate itself composes).</summary>
    public static string Text(string? text) => Escape(text, keepNewlines: true);

    /// <summary>True for a character <see cref="Line"/> escapes (newline and tab included).</summary>
    public static bool IsUnsafe(char ch) => char.GetUnicodeCategory(ch) is UnicodeCategory.Control or UnicodeCategory.Format
        or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Surrogate;

    private static string Escape(string? text, bool keepNewlines)
    {
        if (string.IsNullOrEmpty(text)) return "";
        int i = 0;
        while (i < text.Length && !IsUnsafe(text[i])) i++;
        if (i == text.Length) return text; // the common case: nothing to do, no allocation
        var sb = new StringBuilder(text.Length + 16).Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            char ch = text[i];
            if (char.IsHighSurrogate(ch) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { sb.Append(ch).Append(text[++i]); continue; }
            if (!IsUnsafe(ch) || (keepNewlines && ch is '\n' or '\t')) sb.Append(ch);
            else sb.Append("\\u").Append(((int)ch).ToString("X4", CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }
}
