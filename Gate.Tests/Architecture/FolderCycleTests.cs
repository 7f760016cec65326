using System.Reflection;
using System.Reflection.Emit;
using System.Text.RegularExpressions;
using Gate.Core;
using Gate.Tests.Support;

namespace Gate.Tests.Architecture;

/// <summary>
/// Gate.Core's top-level folders (Tensors, Engine, Model, Policy, Plan, Sandbox, …) form layers: no two of them may
/// depend on each other, directly or through others. A folder depends on another when its compiled code names one of
/// the other's types (signatures, fields, locals, attributes, every type, method and field an IL instruction refers
/// to — what the compiler resolved, however the source spelled it) or when its source imports the other's namespace
/// (which also catches what IL does not keep: inlined constants, <c>nameof</c>). The folder is the namespace: a
/// second test keeps them equal, so a type cannot slip out of its layer by declaring another folder's namespace.
/// </summary>
public sealed class FolderCycleTests
{
    private static readonly Assembly Core = typeof(GateCheckPipeline).Assembly;
    private static string CoreSource => Path.Combine(TestPaths.RepoRoot, "Gate.Core");

    [Fact]
    public void No_two_top_level_Core_folders_depend_on_each_other()
    {
        var graph = Dependencies();
        var cycles = StronglyConnected(graph).Where(c => c.Count > 1).ToList();
        Assert.True(cycles.Count == 0, "Gate.Core folders that depend on each other (move the shared types to the lower folder):\n" +
            string.Join("\n", cycles.Select(c => Describe(c, graph))));
    }

    [Fact]
    public void Every_Core_source_file_declares_the_namespace_of_its_folder()
    {
        var wrong = SourceFiles()
            .Select(f => (File: Path.GetRelativePath(CoreSource, f), Namespace: Regex.Match(File.ReadAllText(f), @"^namespace\s+([\w.]+)", RegexOptions.Multiline).Groups[1].Value))
            .Where(f => f.Namespace != "Gate.Core" + FolderNamespaceSuffix(f.File) && !f.Namespace.StartsWith("Gate.Core" + FolderNamespaceSuffix(f.File) + ".", StringComparison.Ordinal))
            .Select(f => $"{f.File}: namespace {f.Namespace}")
            .ToList();
        Assert.True(wrong.Count == 0, "files whose namespace is not their folder's:\n" + string.Join("\n", wrong));
    }

    [Fact]
    public void The_analysis_sees_known_dependencies()
    {
        // Guards the analysis itself: each of its two sources, alone, finds dependencies that exist (Engine's kernels
        // compute on Tensor; the plan binds the policy).
        var compiled = Dependencies(il: true, source: false);
        var imported = Dependencies(il: false, source: true);
        Assert.Contains("Tensors", compiled["Engine"].Keys);
        Assert.Contains("Policy", compiled["Plan"].Keys);
        Assert.Contains("Tensors", imported["Engine"].Keys);
        Assert.Contains("Policy", imported["Plan"].Keys);
    }

    private static string FolderNamespaceSuffix(string relativeFile)
    {
        var dir = Path.GetDirectoryName(relativeFile) ?? "";
        return dir.Length == 0 ? "" : "." + dir.Split(Path.DirectorySeparatorChar)[0];
    }

    private static IEnumerable<string> SourceFiles() =>
        Directory.EnumerateFiles(CoreSource, "*.cs", SearchOption.AllDirectories)
            .Where(f => !IsBuildOutput(Path.GetRelativePath(CoreSource, f).Split(Path.DirectorySeparatorChar)[0]));

    /// <summary>Build folders hold generated sources: obj/bin, and the GPU flavour's obj-gpu/bin-gpu (docs/gpu.md).</summary>
    private static bool IsBuildOutput(string topFolder) =>
        topFolder is "obj" or "bin" || topFolder.StartsWith("obj-", StringComparison.Ordinal) || topFolder.StartsWith("bin-", StringComparison.Ordinal);

    /// <summary>The top-level folder of a Gate.Core type (by its outermost type's namespace), or null for other assemblies and the root.</summary>
    private static string? FolderOf(Type t)
    {
        while (t.HasElementType) t = t.GetElementType()!;
        while (t.DeclaringType is { } outer && !t.IsGenericParameter) t = outer;
        if (t.IsGenericParameter || t.Assembly != Core) return null;
        var parts = (t.Namespace ?? "").Split('.');
        return parts.Length >= 3 && parts[0] == "Gate" && parts[1] == "Core" ? parts[2] : null;
    }

    /// <summary>folder → folder it depends on → one example per source of the dependency (for the failure message).</summary>
    private static Dictionary<string, Dictionary<string, SortedSet<string>>> Dependencies(bool il = true, bool source = true)
    {
        var graph = new Dictionary<string, Dictionary<string, SortedSet<string>>>();
        void Edge(string from, string? to, string why)
        {
            if (to is null || to == from) return;
            if (!graph.TryGetValue(from, out var outs)) graph[from] = outs = [];
            if (!outs.TryGetValue(to, out var whys)) outs[to] = whys = [];
            if (whys.Count < 3) whys.Add(why);
        }

        foreach (var type in il ? Core.GetTypes() : [])
        {
            if (FolderOf(type) is not { } from) continue;
            string owner = Outermost(type).FullName!;
            foreach (var used in ReferencedTypes(type))
                foreach (var t in Expand(used))
                    Edge(from, FolderOf(t), $"{owner} uses {Outermost(t).FullName}");
        }

        // Imports and qualified names in the source: what IL loses (constants, nameof).
        var mention = new Regex(@"\bGate\.Core\.([A-Z]\w*)");
        foreach (var file in source ? SourceFiles() : [])
        {
            var rel = Path.GetRelativePath(CoreSource, file);
            if (FolderNamespaceSuffix(rel) is not { Length: > 0 } suffix) continue;
            var code = Regex.Replace(File.ReadAllText(file), @"//[^\n]*", "");
            foreach (Match m in mention.Matches(code))
                if (Directory.Exists(Path.Combine(CoreSource, m.Groups[1].Value)))
                    Edge(suffix[1..], m.Groups[1].Value, $"{rel} names Gate.Core.{m.Groups[1].Value}");
        }
        foreach (var folder in Directory.EnumerateDirectories(CoreSource).Select(Path.GetFileName))
            if (folder is not ("obj" or "bin")) graph.TryAdd(folder!, []);
        return graph;
    }

    private static Type Outermost(Type t)
    {
        while (t.HasElementType) t = t.GetElementType()!;
        while (t.DeclaringType is { } outer && !t.IsGenericParameter) t = outer;
        return t;
    }

    /// <summary>A type and everything its name is made of (array elements, generic definitions and arguments).</summary>
    private static IEnumerable<Type> Expand(Type t)
    {
        if (t.HasElementType) { foreach (var x in Expand(t.GetElementType()!)) yield return x; yield break; }
        if (t.IsGenericParameter) yield break;
        if (t.IsGenericType && !t.IsGenericTypeDefinition)
        {
            yield return t.GetGenericTypeDefinition();
            foreach (var a in t.GetGenericArguments()) foreach (var x in Expand(a)) yield return x;
            yield break;
        }
        yield return t;
    }

    private const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static IEnumerable<Type> ReferencedTypes(Type type)
    {
        if (type.BaseType is { } b) yield return b;
        foreach (var i in type.GetInterfaces()) yield return i;
        foreach (var a in type.GetCustomAttributesData()) yield return a.AttributeType;
        foreach (var f in type.GetFields(All)) { yield return f.FieldType; foreach (var a in f.GetCustomAttributesData()) yield return a.AttributeType; }
        foreach (var p in type.GetProperties(All)) yield return p.PropertyType;
        foreach (var m in type.GetMethods(All).Cast<MethodBase>().Concat(type.GetConstructors(All)))
        {
            if (m is MethodInfo mi) yield return mi.ReturnType;
            foreach (var p in m.GetParameters()) yield return p.ParameterType;
            foreach (var a in m.GetCustomAttributesData()) yield return a.AttributeType;
            var body = m.GetMethodBody();
            if (body is null) continue;
            foreach (var l in body.LocalVariables) yield return l.LocalType;
            foreach (var t in IlReferences(m, body.GetILAsByteArray() ?? [])) yield return t;
        }
    }

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    /// <summary>Every type an instruction's token refers to: the type itself, a member's declaring type and its signature's types.</summary>
    private static IEnumerable<Type> IlReferences(MethodBase method, byte[] il)
    {
        var module = method.Module;
        Type[]? typeArgs = method.DeclaringType is { IsGenericType: true } dt ? dt.GetGenericArguments() : null;
        Type[]? methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            short value = il[i] == 0xFE ? (short)(0xFE00 | il[i + 1]) : il[i];
            var op = OpCodesByValue[value];
            i += op.Size;
            switch (op.OperandType)
            {
                case OperandType.InlineNone: break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar: i += 1; break;
                case OperandType.InlineVar: i += 2; break;
                case OperandType.InlineI8 or OperandType.InlineR: i += 8; break;
                case OperandType.InlineSwitch: i += 4 + 4 * BitConverter.ToInt32(il, i); break;
                case OperandType.InlineType or OperandType.InlineTok or OperandType.InlineMethod or OperandType.InlineField:
                {
                    var member = module.ResolveMember(BitConverter.ToInt32(il, i), typeArgs, methodArgs);
                    i += 4;
                    switch (member)
                    {
                        case Type t: yield return t; break;
                        case FieldInfo f: yield return f.DeclaringType!; yield return f.FieldType; break;
                        case MethodBase mb:
                            if (mb.DeclaringType is { } d) yield return d;
                            if (mb is MethodInfo mi) { yield return mi.ReturnType; if (mi.IsGenericMethod) foreach (var a in mi.GetGenericArguments()) yield return a; }
                            foreach (var p in mb.GetParameters()) yield return p.ParameterType;
                            break;
                    }
                    break;
                }
                default: i += 4; break; // InlineI, InlineBrTarget, InlineString, InlineSig, ShortInlineR
            }
        }
    }

    /// <summary>Tarjan's strongly connected components: each component of more than one folder is a cycle.</summary>
    private static List<List<string>> StronglyConnected(Dictionary<string, Dictionary<string, SortedSet<string>>> graph)
    {
        int next = 0;
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var onStack = new HashSet<string>();
        var result = new List<List<string>>();
        void Visit(string v)
        {
            index[v] = low[v] = next++;
            stack.Push(v); onStack.Add(v);
            foreach (var w in graph.GetValueOrDefault(v)?.Keys ?? Enumerable.Empty<string>())
            {
                if (!index.ContainsKey(w)) { Visit(w); low[v] = Math.Min(low[v], low[w]); }
                else if (onStack.Contains(w)) low[v] = Math.Min(low[v], index[w]);
            }
            if (low[v] != index[v]) return;
            var component = new List<string>();
            string x;
            do { x = stack.Pop(); onStack.Remove(x); component.Add(x); } while (x != v);
            component.Sort(StringComparer.Ordinal);
            result.Add(component);
        }
        foreach (var v in graph.Keys.Order(StringComparer.Ordinal))
            if (!index.ContainsKey(v)) Visit(v);
        return result;
    }

    /// <summary>A cycle's folders and, for every dependency inside it, why it exists.</summary>
    private static string Describe(List<string> component, Dictionary<string, Dictionary<string, SortedSet<string>>> graph)
    {
        var lines = new List<string> { "  cycle: " + string.Join(" <-> ", component) };
        foreach (var from in component)
            foreach (var (to, whys) in graph[from].Where(e => component.Contains(e.Key)).OrderBy(e => e.Key, StringComparer.Ordinal))
                lines.Add($"    {from} -> {to}: {string.Join("; ", whys)}");
        return string.Join("\n", lines);
    }
}
