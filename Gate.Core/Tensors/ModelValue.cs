namespace Gate.Core.Tensors;

/// <summary>
/// A value a graph input or output of <c>gate run</c> holds: a tensor, a sequence of tensors, or an optional without a
/// value (none). An optional that holds a value is that value. On disk (<see cref="Read"/>, <see cref="Write"/>): a
/// tensor is one .npy, a sequence one .npz whose arrays arr_0, arr_1, … are its elements in order (NumPy's
/// <c>np.savez(path, *arrays)</c>), and none is no file at all.
/// </summary>
public sealed class ModelValue
{
    public Tensor? Tensor { get; }
    public IReadOnlyList<Tensor>? Sequence { get; }
    public bool IsNone => Tensor is null && Sequence is null;

    private ModelValue(Tensor? tensor, IReadOnlyList<Tensor>? sequence) { Tensor = tensor; Sequence = sequence; }

    public static ModelValue Of(Tensor t) => new(t, null);
    public static ModelValue Of(IReadOnlyList<Tensor> sequence) => new(null, sequence);
    public static readonly ModelValue None = new(null, null);

    /// <summary>The file extension this value is written with; null for none, which has no file.</summary>
    public string? Extension => Tensor is not null ? ".npy" : Sequence is not null ? ".npz" : null;

    public override string ToString() =>
        Tensor?.ToString() ?? (Sequence is { } s ? $"sequence of {s.Count}{(s.Count == 0 ? "" : ": " + string.Join(", ", s.Take(4).Select(t => t.ToString())) + (s.Count > 4 ? ", …" : ""))}" : "none");

    /// <summary>A .npy (tensor) or .npz (sequence) file, told apart by content; the same guards as any .npy input.</summary>
    public static ModelValue Read(string path)
    {
        var bytes = Npy.ReadBytes(path);
        return Npy.IsNpz(bytes) ? Of(Npy.ParseSequenceNpz(bytes, path)) : Of(Npy.Parse(bytes, path));
    }

    /// <summary>Writes the value to <paramref name="path"/> (which should end in <see cref="Extension"/>); none writes nothing.</summary>
    public void Write(string path)
    {
        if (Tensor is { } t) Npy.Write(path, t);
        else if (Sequence is { } s) File.WriteAllBytes(path, Npy.ComposeNpz(s.Select((e, i) => ($"arr_{i}", Npy.ToBytes(e)))));
    }
}
