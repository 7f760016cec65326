using Gate.Core.Tensors;

namespace Gate.Core.Numerics;

/// <summary>A sample matrix: n rows (samples) of d features, row-major doubles.</summary>
public sealed record SampleMatrix(double[] Data, int Rows, int Columns)
{
    public ReadOnlySpan<double> Row(int i) => Data.AsSpan(i * Columns, Columns);

    public static SampleMatrix FromTensor(Tensor t)
    {
        int n = t.Shape[0];
        int d = n == 0 ? 0 : t.Length / n;
        return new SampleMatrix(t.ToDoubleArray(), n, d);
    }

    public SampleMatrix SelectRows(IReadOnlyList<int> rows)
    {
        var data = new double[rows.Count * Columns];
        for (int i = 0; i < rows.Count; i++) Array.Copy(Data, rows[i] * Columns, data, i * Columns, Columns);
        return new SampleMatrix(data, rows.Count, Columns);
    }
}
