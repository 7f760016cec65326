using System.Globalization;
using System.Text;

namespace Gate.Core.Verification;

/// <summary>An output constraint Σ Cⱼ·Yⱼ ≤ D (every VNN-LIB comparison is normalised to this form).</summary>
public sealed record OutputConstraint(double[] C, double D, int Line, int Column);

/// <summary>
/// One disjunct of a property: an input box and a conjunction of output constraints. The property is violated
/// ("sat") when some input in the box makes every constraint of some case hold.
/// </summary>
public sealed record VnnCase(double[] InputLower, double[] InputUpper, IReadOnlyList<OutputConstraint> Constraints);

/// <summary>A parsed VNN-LIB property: X_0…X_{n−1}, Y_0…Y_{m−1} and its cases (disjunctive normal form).</summary>
public sealed record VnnProperty(string Source, int InputCount, int OutputCount, IReadOnlyList<VnnCase> Cases);

/// <summary>A VNN-LIB file the parser does not accept: file:line:column and what was expected.</summary>
public sealed class VnnLibException(string message) : GateInputException(message);

/// <summary>
/// Parser for the VNN-LIB subset used in VNN-COMP: <c>(declare-const X_i Real)</c> / <c>Y_j</c>,
/// <c>(assert …)</c> over <c>&lt;=</c>/<c>&gt;=</c> of linear terms (<c>+</c>, <c>-</c>, <c>*</c> by a constant,
/// decimal and scientific numbers), <c>and</c>, <c>or</c>. Comparisons over one X with a constant make the input
/// box; comparisons over Y only make output constraints; anything else is rejected with its position.
/// </summary>
public static class VnnLib
{
    private const int MaxCases = 100_000;

    private sealed record SExpr(string? Atom, List<SExpr>? Items, int Line, int Column)
    {
        public bool IsList => Items is not null;
        public string Head => Items is { Count: > 0 } l && l[0].Atom is { } a ? a : "";
    }

    /// <summary>Linear term over named variables plus a constant.</summary>
    private sealed class Term
    {
        public readonly Dictionary<string, double> Coef = new(StringComparer.Ordinal);
        public double Constant;
        public Term Scale(double k) { var t = new Term { Constant = Constant * k }; foreach (var (v, c) in Coef) t.Coef[v] = c * k; return t; }
        public Term Plus(Term o) { var t = Scale(1); t.Constant += o.Constant; foreach (var (v, c) in o.Coef) t.Coef[v] = t.Coef.GetValueOrDefault(v) + c; return t; }
        public bool IsConstant => Coef.Values.All(c => c == 0);
    }

    private sealed record Atom(Term LeqZero, SExpr At); // LeqZero ≤ 0

    public static VnnProperty Load(string path)
    {
        if (!File.Exists(path)) throw new GateInputException($"{path}: VNN-LIB file not found");
        return Parse(File.ReadAllText(path), path);
    }

    public static VnnProperty Parse(string text, string source)
    {
        var exprs = Read(text, source);
        var inputs = new HashSet<int>(); var outputs = new HashSet<int>();
        var conjuncts = new List<List<List<Atom>>>(); // per assert: DNF
        VnnLibException Err(SExpr e, string msg) => new($"{source}:{e.Line}:{e.Column}: {msg}");

        foreach (var e in exprs)
        {
            if (!e.IsList) throw Err(e, $"expected '(declare-const …)' or '(assert …)', got '{e.Atom}'");
            switch (e.Head)
            {
                case "declare-const":
                {
                    if (e.Items!.Count != 3 || e.Items[1].Atom is not { } name || e.Items[2].Atom is not { } type)
                        throw Err(e, "expected (declare-const NAME Real)");
                    if (type != "Real") throw Err(e.Items[2], $"only Real constants are supported, got '{type}'");
                    var (kind, idx) = Variable(name) ?? throw Err(e.Items[1], $"variable names must be X_<i> (inputs) or Y_<j> (outputs), got '{name}'");
                    if (!(kind == 'X' ? inputs : outputs).Add(idx)) throw Err(e.Items[1], $"'{name}' is declared twice");
                    break;
                }
                case "assert":
                    if (e.Items!.Count != 2) throw Err(e, "expected (assert FORMULA)");
                    conjuncts.Add(Formula(e.Items[1], inputs, outputs, source));
                    break;
                default:
                    throw Err(e, $"unsupported command '{(e.Head.Length > 0 ? e.Head : "(…)")}' (expected declare-const or assert)");
            }
        }
        int nx = Dense(inputs, 'X', source), ny = Dense(outputs, 'Y', source);
        if (nx == 0) throw new VnnLibException($"{source}:1:1: no input variables (X_0 …) are declared");
        if (ny == 0) throw new VnnLibException($"{source}:1:1: no output variables (Y_0 …) are declared");

        // The asserts are a conjunction of DNFs: take the product, case by case.
        var cases = new List<List<Atom>> { new() };
        foreach (var dnf in conjuncts)
        {
            if ((long)cases.Count * dnf.Count > MaxCases) throw new VnnLibException($"{source}: the property expands to more than {MaxCases} cases");
            cases = cases.SelectMany(c => dnf.Select(d => c.Concat(d).ToList())).ToList();
        }

        var result = new List<VnnCase>();
        foreach (var atoms in cases)
        {
            var lo = Enumerable.Repeat(double.NegativeInfinity, nx).ToArray();
            var hi = Enumerable.Repeat(double.PositiveInfinity, nx).ToArray();
            var cons = new List<OutputConstraint>();
            bool impossible = false;
            foreach (var (t, at) in atoms)
            {
                var vars = t.Coef.Where(kv => kv.Value != 0).ToList();
                if (vars.Count == 0) { if (t.Constant > 0) impossible = true; continue; }
                bool anyX = vars.Any(v => v.Key[0] == 'X'), anyY = vars.Any(v => v.Key[0] == 'Y');
                if (anyX && anyY) throw Err(at, "constraints mixing inputs (X) and outputs (Y) are not supported");
                if (anyX)
                {
                    if (vars.Count != 1) throw Err(at, "input constraints must bound a single X_i by a constant (an input box)");
                    int i = Variable(vars[0].Key)!.Value.index; double a = vars[0].Value, bound = -t.Constant / a;
                    if (a > 0) hi[i] = Math.Min(hi[i], bound); else lo[i] = Math.Max(lo[i], bound);
                }
                else
                {
                    var c = new double[ny];
                    foreach (var (v, k) in vars) c[Variable(v)!.Value.index] = k;
                    cons.Add(new OutputConstraint(c, -t.Constant, at.Line, at.Column));
                }
            }
            if (impossible) continue;
            for (int i = 0; i < nx; i++)
            {
                if (double.IsInfinity(lo[i]) || double.IsInfinity(hi[i]))
                    throw new VnnLibException($"{source}: X_{i} has no {(double.IsInfinity(lo[i]) ? "lower" : "upper")} bound (every input needs a box: (assert (>= X_{i} a)) and (assert (<= X_{i} b)))");
                if (lo[i] > hi[i]) { impossible = true; break; }
            }
            if (!impossible) result.Add(new VnnCase(lo, hi, cons));
        }
        return new VnnProperty(source, nx, ny, result);
    }

    private static int Dense(HashSet<int> set, char kind, string source)
    {
        for (int i = 0; i < set.Count; i++)
            if (!set.Contains(i)) throw new VnnLibException($"{source}: {kind}_{i} is not declared but {kind}_{set.Max()} is (variables must be numbered from 0 without gaps)");
        return set.Count;
    }

    private static (char kind, int index)? Variable(string name)
    {
        if (name.Length < 3 || (name[0] != 'X' && name[0] != 'Y') || name[1] != '_') return null;
        return int.TryParse(name.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? (name[0], i) : null;
    }

    private static List<List<Atom>> Formula(SExpr e, HashSet<int> xs, HashSet<int> ys, string source)
    {
        VnnLibException Err(SExpr at, string msg) => new($"{source}:{at.Line}:{at.Column}: {msg}");
        if (!e.IsList) throw Err(e, $"expected a formula ((<= …), (>= …), (and …), (or …)), got '{e.Atom}'");
        var args = e.Items!.Skip(1).ToList();
        switch (e.Head)
        {
            case "and":
            {
                var acc = new List<List<Atom>> { new() };
                foreach (var a in args)
                {
                    var d = Formula(a, xs, ys, source);
                    if ((long)acc.Count * d.Count > MaxCases) throw Err(e, $"the formula expands to more than {MaxCases} cases");
                    acc = acc.SelectMany(c => d.Select(x => c.Concat(x).ToList())).ToList();
                }
                return acc;
            }
            case "or":
                if (args.Count == 0) throw Err(e, "(or) needs at least one operand");
                return args.SelectMany(a => Formula(a, xs, ys, source)).ToList();
            case "<=" or ">=":
            {
                if (args.Count != 2) throw Err(e, $"({e.Head} A B) takes exactly two terms, got {args.Count}");
                var a = LinearTerm(args[0], xs, ys, source); var b = LinearTerm(args[1], xs, ys, source);
                var t = e.Head == "<=" ? a.Plus(b.Scale(-1)) : b.Plus(a.Scale(-1));
                return [[new Atom(t, e)]];
            }
            case "<" or ">" or "=" or "not" or "=>":
                throw Err(e, $"'{e.Head}' is not supported (the VNN-COMP subset uses <=, >=, and, or)");
            default:
                throw Err(e, $"unknown formula '{(e.Head.Length > 0 ? e.Head : "(…)")}'");
        }
    }

    private static Term LinearTerm(SExpr e, HashSet<int> xs, HashSet<int> ys, string source)
    {
        VnnLibException Err(SExpr at, string msg) => new($"{source}:{at.Line}:{at.Column}: {msg}");
        if (!e.IsList)
        {
            var a = e.Atom!;
            if (double.TryParse(a, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && !double.IsNaN(v) && !double.IsInfinity(v))
                return new Term { Constant = v };
            if (Variable(a) is var (kind, idx))
            {
                if (!(kind == 'X' ? xs : ys).Contains(idx)) throw Err(e, $"'{a}' is used before it is declared");
                var t = new Term(); t.Coef[a] = 1; return t;
            }
            throw Err(e, $"expected a number or a declared X_i/Y_j, got '{a}'");
        }
        var args = e.Items!.Skip(1).Select(x => LinearTerm(x, xs, ys, source)).ToList();
        switch (e.Head)
        {
            case "+":
                if (args.Count == 0) throw Err(e, "(+) needs operands");
                return args.Aggregate((p, q) => p.Plus(q));
            case "-":
                if (args.Count == 0) throw Err(e, "(-) needs operands");
                return args.Count == 1 ? args[0].Scale(-1) : args.Skip(1).Aggregate(args[0], (p, q) => p.Plus(q.Scale(-1)));
            case "*":
            {
                if (args.Count < 2) throw Err(e, "(*) needs at least two operands");
                Term acc = args[0];
                foreach (var q in args.Skip(1))
                {
                    if (acc.IsConstant) acc = q.Scale(acc.Constant);
                    else if (q.IsConstant) acc = acc.Scale(q.Constant);
                    else throw Err(e, "a product of two variables is not linear (one factor of * must be a constant)");
                }
                return acc;
            }
            default:
                throw Err(e, $"unsupported term '{(e.Head.Length > 0 ? e.Head : "(…)")}' (expected a number, a variable, +, - or *)");
        }
    }

    private static List<SExpr> Read(string text, string source)
    {
        var top = new List<SExpr>();
        var stack = new Stack<(List<SExpr> items, int line, int col)>();
        int line = 1, col = 1;
        for (int i = 0; i < text.Length;)
        {
            char ch = text[i];
            if (ch == '\n') { line++; col = 1; i++; continue; }
            if (char.IsWhiteSpace(ch)) { col++; i++; continue; }
            if (ch == ';') { while (i < text.Length && text[i] != '\n') i++; continue; }
            if (ch == '(') { stack.Push((new List<SExpr>(), line, col)); col++; i++; continue; }
            if (ch == ')')
            {
                if (stack.Count == 0) throw new VnnLibException($"{source}:{line}:{col}: unbalanced ')'");
                var (items, l, c) = stack.Pop();
                var e = new SExpr(null, items, l, c);
                (stack.Count == 0 ? top : stack.Peek().items).Add(e);
                col++; i++; continue;
            }
            var sb = new StringBuilder();
            int startCol = col;
            while (i < text.Length && !char.IsWhiteSpace(text[i]) && text[i] is not ('(' or ')' or ';')) { sb.Append(text[i]); i++; col++; }
            var atom = new SExpr(sb.ToString(), null, line, startCol);
            if (stack.Count == 0) throw new VnnLibException($"{source}:{line}:{startCol}: expected '(' before '{atom.Atom}'");
            stack.Peek().items.Add(atom);
        }
        if (stack.Count > 0)
        {
            var (_, l, c) = stack.Peek();
            throw new VnnLibException($"{source}:{l}:{c}: '(' is never closed");
        }
        return top;
    }

    /// <summary>Formats a property (one case per assert-or) back to VNN-LIB: used to write generated properties.</summary>
    public static string Write(double[] lower, double[] upper, int outputs, IEnumerable<OutputConstraint[]> disjuncts)
    {
        var sb = new StringBuilder();
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        for (int i = 0; i < lower.Length; i++) sb.Append($"(declare-const X_{i} Real)\n");
        for (int j = 0; j < outputs; j++) sb.Append($"(declare-const Y_{j} Real)\n");
        for (int i = 0; i < lower.Length; i++) sb.Append($"(assert (>= X_{i} {F(lower[i])}))\n(assert (<= X_{i} {F(upper[i])}))\n");
        sb.Append("(assert (or\n");
        foreach (var conj in disjuncts)
        {
            sb.Append("  (and");
            foreach (var c in conj)
                sb.Append(" (<= (+ ").Append(string.Join(" ", c.C.Select((k, j) => (k, j)).Where(p => p.k != 0).Select(p => $"(* {F(p.k)} Y_{p.j})"))).Append($") {F(c.D)})");
            sb.Append(")\n");
        }
        sb.Append("))\n");
        return sb.ToString();
    }
}
