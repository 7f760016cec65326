using System.Reflection;
using System.Text.RegularExpressions;
using Gate.Core;
using Gate.Tests.Support;

namespace Gate.Tests.Architecture;

/// <summary>
/// Gate.Core is a library and the CLI an adapter: Core returns typed outcomes (a decision, a <c>VerifyFailure</c>, an
/// <c>ImpactOutcome</c>, a <c>UserInput</c> on an input error) and Gate.Cli maps them to exit codes and phrases flag hints.
/// </summary>
public sealed class CoreIsALibraryTests
{
    private static readonly Assembly Core = typeof(GateCheckPipeline).Assembly;

    [Fact]
    public void Core_exposes_no_exit_code()
    {
        var members = Core.GetExportedTypes()
            .SelectMany(t => t.GetMembers(BindingFlags.Public | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly).Select(m => $"{t.FullName}.{m.Name}").Prepend(t.FullName!))
            .Where(n => n.Contains("ExitCode", StringComparison.OrdinalIgnoreCase))
            .ToList();
        Assert.True(members.Count == 0, "exit codes belong to Gate.Cli/ExitCodes.cs:\n" + string.Join("\n", members));
    }

    /// <summary>
    /// No flag at all, not even the data override's: Core says "data override" in its own words and carries the
    /// override a message is about as a typed value (<c>PolicyError.Override</c>), which the CLI spells as its flag.
    /// </summary>
    [Fact]
    public void Core_messages_name_no_command_line_flag()
    {
        var root = Path.Combine(TestPaths.RepoRoot, "Gate.Core");
        var flag = new Regex(@"--[a-z][a-z-]*");
        var found = Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => Path.GetRelativePath(root, f).Split(Path.DirectorySeparatorChar)[0] is not ("obj" or "bin"))
            .SelectMany(f => StringLiterals.Of(File.ReadAllText(f)).SelectMany(s => flag.Matches(s.Text)
                .Select(m => $"{Path.GetRelativePath(root, f)}:{s.Line + s.Text[..m.Index].Count(c => c == '\n')}: {m.Value}")))
            .ToList();
        Assert.True(found.Count == 0, "flag names belong to Gate.Cli (Core names the value, e.g. UserInput, PolicyError.Override):\n" + string.Join("\n", found));
    }

    [Fact]
    public void The_literal_scanner_sees_strings_nested_in_interpolations_and_skips_code_and_comments()
    {
        const string source = """"
            var a = $"{n} samples{(o ? " · with --nested" : "")}"; // "--comment"
            var b = --count + '"' + @"say ""--verbatim""" + $$"""
                raw {{x}} --raw
                """;
            """";
        var texts = StringLiterals.Of(source).ToList();
        Assert.Contains(texts, t => t.Text == " · with --nested" && t.Line == 1);
        Assert.Contains(texts, t => t.Text.Contains("say \"--verbatim\"") && t.Line == 2);
        Assert.Contains(texts, t => t.Text.Contains("--raw") && t.Line == 3);
        Assert.DoesNotContain(texts, t => t.Text.Contains("--comment") || t.Text.Contains("--count"));
    }

    /// <summary>
    /// The text of C# string literals with the line each starts on: regular, verbatim, raw and interpolated ones,
    /// including strings nested in interpolation holes; comments and character literals are skipped. A small lexer,
    /// not a regex, because a regex pairs the quotes of <c>$"{(x ? " a" : "")}"</c> wrongly.
    /// </summary>
    private sealed class StringLiterals(string s)
    {
        private readonly List<(int Line, string Text)> found = [];
        private int i, line = 1;

        public static List<(int Line, string Text)> Of(string source)
        {
            var lexer = new StringLiterals(source);
            lexer.Code(inHole: false);
            return lexer.found;
        }

        private char At(int k = 0) => i + k < s.Length ? s[i + k] : '\0';
        private void Next() { if (s[i] == '\n') line++; i++; }
        private bool StringStarts() => At() == '"' || (At() is '$' or '@' && (At(1) == '"' || (At(1) is '$' or '@' && (At(2) == '"' || At(2) == '$'))));

        /// <summary>Code up to the end, or up to the '}' that closes an interpolation hole.</summary>
        private void Code(bool inHole)
        {
            int depth = 0;
            while (i < s.Length)
            {
                if (At() == '/' && At(1) == '/') { while (i < s.Length && At() != '\n') Next(); }
                else if (At() == '/' && At(1) == '*') { Next(); Next(); while (i < s.Length && !(At() == '*' && At(1) == '/')) Next(); if (i < s.Length) { Next(); Next(); } }
                else if (At() == '\'') { Next(); while (i < s.Length && At() != '\'') { if (At() == '\\') Next(); Next(); } if (i < s.Length) Next(); }
                else if (StringStarts()) Literal();
                else if (At() == '{') { depth++; Next(); }
                else if (At() == '}' && inHole && depth == 0) { Next(); return; }
                else { if (At() == '}') depth--; Next(); }
            }
        }

        private void Literal()
        {
            int dollars = 0; bool verbatim = false;
            for (; At() is '$' or '@'; Next()) { if (At() == '$') dollars++; else verbatim = true; }
            int quotes = 0;
            while (At(quotes) == '"') quotes++;
            bool raw = quotes >= 3;
            if (!raw) quotes = 1;
            for (int q = 0; q < quotes; q++) Next();
            var text = new System.Text.StringBuilder();
            int start = line;
            void Flush() { found.Add((start, text.ToString())); text.Clear(); start = line; }
            while (i < s.Length)
            {
                if (At() == '"')
                {
                    if (raw) { int run = 0; while (At(run) == '"') run++; if (run >= quotes) { for (int q = 0; q < quotes; q++) Next(); break; } }
                    else if (verbatim && At(1) == '"') { text.Append('"'); Next(); Next(); continue; }
                    else { Next(); break; }
                }
                if (At() == '\\' && !verbatim && !raw) { text.Append(At()).Append(At(1)); Next(); Next(); continue; }
                if (dollars > 0 && At() == '{')
                {
                    int run = 0; while (At(run) == '{') run++;
                    int open = raw ? dollars : 1;
                    if (!raw && run >= 2) { text.Append('{'); Next(); Next(); continue; } // {{ is a brace in $"..."
                    if (run >= open)
                    {
                        for (int k = 0; k < run; k++) { if (k < run - open) text.Append('{'); Next(); }
                        Flush();
                        Code(inHole: true);
                        start = line;
                        continue;
                    }
                }
                text.Append(At()); Next();
            }
            Flush();
        }
    }
}
