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
    /// The data override is the one command-line name Core's wording still uses: review, lint, the report and the
    /// plan's errors call it "--data" because that is how users know it (see docs/architecture.md).
    /// </summary>
    private static readonly HashSet<string> NamedInCoreWording = ["--data"];

    [Fact]
    public void Core_messages_name_no_command_line_flag()
    {
        var root = Path.Combine(TestPaths.RepoRoot, "Gate.Core");
        var literal = new Regex(@"""(?:[^""\\]|\\.)*""");
        var flag = new Regex(@"--[a-z][a-z-]*");
        var found = Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => Path.GetRelativePath(root, f).Split(Path.DirectorySeparatorChar)[0] is not ("obj" or "bin"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (File: Path.GetRelativePath(root, f), Line: i + 1, Code: Regex.Replace(line, @"//.*$", ""))))
            .SelectMany(l => literal.Matches(l.Code).SelectMany(s => flag.Matches(s.Value)).Select(m => (l.File, l.Line, Flag: m.Value)))
            .Where(x => !NamedInCoreWording.Contains(x.Flag))
            .Select(x => $"{x.File}:{x.Line}: {x.Flag}")
            .ToList();
        Assert.True(found.Count == 0, "flag names belong to Gate.Cli (Core names the value, e.g. UserInput):\n" + string.Join("\n", found));
    }
}
