using System.Globalization;
using System.Text;
using Gate.Core.Numerics;

namespace Gate.Core.Checks.Surrogate;

/// <summary>
/// A CART classification tree (Breiman et al. 1984) grown with the Gini impurity, binary splits "feature ≤ threshold"
/// at midpoints between consecutive distinct values, a depth limit and a minimum leaf size. Ties between equally good
/// splits go to the lowest feature index then the lowest threshold, so growth is deterministic.
/// </summary>
public sealed class DecisionTree
{
    public sealed record Node(int Feature, double Threshold, Node? Left, Node? Right, int Label, int Samples, double Impurity)
    {
        public bool IsLeaf => Left is null;
    }

    public Node Root { get; }
    public int Classes { get; }

    private DecisionTree(Node root, int classes) { Root = root; Classes = classes; }

    public static DecisionTree Fit(SampleMatrix x, int[] y, int classes, int maxDepth, int minSamplesLeaf)
    {
        var idx = Enumerable.Range(0, x.Rows).ToArray();
        return new DecisionTree(Grow(x, y, classes, idx, 0, maxDepth, Math.Max(1, minSamplesLeaf)), classes);
    }

    public static double Gini(int[] counts, int total)
    {
        if (total == 0) return 0;
        double s = 0;
        foreach (var c in counts) { double p = (double)c / total; s += p * p; }
        return 1 - s;
    }

    private static Node Grow(SampleMatrix x, int[] y, int classes, int[] idx, int depth, int maxDepth, int minLeaf)
    {
        var counts = new int[classes];
        foreach (var i in idx) counts[y[i]]++;
        int label = Array.IndexOf(counts, counts.Max()); // majority, lowest class on ties
        double impurity = Gini(counts, idx.Length);
        if (depth >= maxDepth || impurity == 0 || idx.Length < 2 * minLeaf) return new Node(-1, 0, null, null, label, idx.Length, impurity);

        int bestFeature = -1; double bestThreshold = 0, bestScore = impurity * idx.Length + 1e-9; // like scikit-learn, a split that does not worsen the impurity is taken (XOR needs one)
        var order = new int[idx.Length];
        var left = new int[classes];
        for (int f = 0; f < x.Columns; f++)
        {
            Array.Copy(idx, order, idx.Length);
            int feature = f;
            Array.Sort(order, (a, b) => { int c = x.Data[a * x.Columns + feature].CompareTo(x.Data[b * x.Columns + feature]); return c != 0 ? c : a.CompareTo(b); });
            Array.Clear(left);
            for (int k = 0; k < order.Length - 1; k++)
            {
                left[y[order[k]]]++;
                int nl = k + 1, nr = order.Length - nl;
                double v = x.Data[order[k] * x.Columns + f], next = x.Data[order[k + 1] * x.Columns + f];
                if (v == next || nl < minLeaf || nr < minLeaf) continue;
                // Weighted impurity n_l·G_l + n_r·G_r, from the running left counts.
                double sl = 0, sr = 0;
                for (int c = 0; c < classes; c++) { double l = left[c]; double r = counts[c] - left[c]; sl += l * l; sr += r * r; }
                double score = nl - sl / nl + nr - sr / nr;
                if (score < bestScore) { bestScore = score; bestFeature = f; bestThreshold = 0.5 * (v + next); }
            }
        }
        if (bestFeature < 0) return new Node(-1, 0, null, null, label, idx.Length, impurity);
        var li = idx.Where(i => x.Data[i * x.Columns + bestFeature] <= bestThreshold).ToArray();
        var ri = idx.Where(i => x.Data[i * x.Columns + bestFeature] > bestThreshold).ToArray();
        return new Node(bestFeature, bestThreshold, Grow(x, y, classes, li, depth + 1, maxDepth, minLeaf), Grow(x, y, classes, ri, depth + 1, maxDepth, minLeaf),
            label, idx.Length, impurity);
    }

    public int Predict(ReadOnlySpan<double> row)
    {
        var n = Root;
        while (!n.IsLeaf) n = row[n.Feature] <= n.Threshold ? n.Left! : n.Right!;
        return n.Label;
    }

    public int Depth => DepthOf(Root);
    public int Leaves => LeavesOf(Root);
    private static int DepthOf(Node n) => n.IsLeaf ? 0 : 1 + Math.Max(DepthOf(n.Left!), DepthOf(n.Right!));
    private static int LeavesOf(Node n) => n.IsLeaf ? 1 : LeavesOf(n.Left!) + LeavesOf(n.Right!);

    /// <summary>The tree as indented if/else text; <paramref name="featureName"/> names feature columns, <paramref name="className"/> classes.</summary>
    public string ToText(Func<int, string> featureName, Func<int, string> className)
    {
        var sb = new StringBuilder();
        void Walk(Node n, string indent)
        {
            if (n.IsLeaf) { sb.Append(indent).Append("→ ").Append(className(n.Label)).Append("  (").Append(n.Samples).AppendLine(" samples)"); return; }
            string t = n.Threshold.ToString("G6", CultureInfo.InvariantCulture);
            sb.Append(indent).Append("if ").Append(featureName(n.Feature)).Append(" <= ").Append(t).AppendLine(":");
            Walk(n.Left!, indent + "  ");
            sb.Append(indent).Append("else:  # ").Append(featureName(n.Feature)).Append(" > ").AppendLine(t);
            Walk(n.Right!, indent + "  ");
        }
        Walk(Root, "");
        return sb.ToString();
    }
}
