using Gate.Core.Verification;

namespace Gate.Tests.Verification;

public class VnnLibTests
{
    private const string Acas = """
        ; ACAS-Xu-like property: inputs in a box, Y_0 must not be the minimal score
        (declare-const X_0 Real)
        (declare-const X_1 Real)
        (declare-const Y_0 Real)
        (declare-const Y_1 Real)
        (declare-const Y_2 Real)
        (assert (<= X_0 0.679857769))
        (assert (>= X_0 0.6))
        (assert (<= X_1 5e-1))
        (assert (>= X_1 -1.5E-1))
        (assert (<= Y_0 Y_1))
        (assert (or (and (<= (+ Y_0 (* -2 Y_2)) (- 3)) (>= Y_1 0.5)) (and (<= (- Y_0 Y_2) 0))))
        """;

    [Fact]
    public void Parses_boxes_linear_terms_scientific_numbers_and_disjunctions()
    {
        var p = VnnLib.Parse(Acas, "acas.vnnlib");
        Assert.Equal(2, p.InputCount);
        Assert.Equal(3, p.OutputCount);
        Assert.Equal(2, p.Cases.Count);
        var c0 = p.Cases[0];
        Assert.Equal([0.6, -0.15], c0.InputLower);
        Assert.Equal([0.679857769, 0.5], c0.InputUpper);
        Assert.Equal(3, c0.Constraints.Count);
        // Y_0 − Y_1 ≤ 0
        Assert.Equal([1.0, -1.0, 0.0], c0.Constraints[0].C); Assert.Equal(0, c0.Constraints[0].D);
        // Y_0 − 2·Y_2 ≤ −3
        Assert.Equal([1.0, 0.0, -2.0], c0.Constraints[1].C); Assert.Equal(-3, c0.Constraints[1].D);
        // Y_1 ≥ 0.5  ⇔  −Y_1 ≤ −0.5
        Assert.Equal([0.0, -1.0, 0.0], c0.Constraints[2].C); Assert.Equal(-0.5, c0.Constraints[2].D);
        Assert.Equal(2, p.Cases[1].Constraints.Count);
        Assert.Equal([1.0, 0.0, -1.0], p.Cases[1].Constraints[1].C);
    }

    [Fact]
    public void Disjunctions_of_input_boxes_become_separate_cases()
    {
        var p = VnnLib.Parse("""
            (declare-const X_0 Real) (declare-const Y_0 Real)
            (assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 2) (<= X_0 3))))
            (assert (>= Y_0 1))
            """, "p");
        Assert.Equal(2, p.Cases.Count);
        Assert.Equal(2.0, p.Cases[1].InputLower[0]);
        Assert.Equal(3.0, p.Cases[1].InputUpper[0]);
    }

    [Theory]
    [InlineData("(declare-const X_0 Int)", "1:20", "only Real")]
    [InlineData("(declare-const Z_0 Real)", "1:16", "X_<i>")]
    [InlineData("(declare-const X_0 Real)\n(assert (< X_0 1))", "2:9", "'<' is not supported")]
    [InlineData("(declare-const X_0 Real)\n(assert (<= (* X_0 X_0) 1))", "2:13", "not linear")]
    [InlineData("(declare-const X_0 Real)\n(assert (<= X_1 1))", "2:13", "before it is declared")]
    [InlineData("(declare-const X_0 Real)\n(assert (<= X_0 1)", "2:1", "never closed")]
    [InlineData("(declare-const X_0 Real))", "1:25", "unbalanced")]
    [InlineData("(declare-const X_0 Real)\n(check-sat)", "2:1", "unsupported command")]
    [InlineData("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= (+ X_0 Y_0) 1))", "3:9", "mixing inputs")]
    [InlineData("(declare-const X_0 Real)\n(assert (<= X_0 abc))", "2:17", "expected a number")]
    [InlineData("(declare-const X_0 Real)\n(assert (<= X_0 1 2))", "2:9", "exactly two")]
    public void Rejects_anything_else_with_line_and_column(string text, string position, string message)
    {
        var e = Assert.Throws<VnnLibException>(() => VnnLib.Parse(text, "bad.vnnlib"));
        Assert.StartsWith($"bad.vnnlib:{position}: ", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Missing_input_bounds_and_gaps_in_numbering_are_errors()
    {
        Assert.Contains("X_0 has no upper bound", Assert.Throws<VnnLibException>(() =>
            VnnLib.Parse("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (>= X_0 0))(assert (>= Y_0 0))", "p")).Message);
        Assert.Contains("X_1 is not declared", Assert.Throws<VnnLibException>(() =>
            VnnLib.Parse("(declare-const X_0 Real)(declare-const X_2 Real)(declare-const Y_0 Real)", "p")).Message);
    }

    [Fact]
    public void Written_properties_parse_back_to_the_same_cases()
    {
        var text = VnnLib.Write([0, -1], [1, 2], 3, [[new OutputConstraint([1, -1, 0], 0.25, 0, 0)], [new OutputConstraint([0, 1, -1], 0, 0, 0)]]);
        var p = VnnLib.Parse(text, "w");
        Assert.Equal(2, p.Cases.Count);
        Assert.Equal([1.0, -1.0, 0.0], p.Cases[0].Constraints[0].C);
        Assert.Equal(0.25, p.Cases[0].Constraints[0].D);
        Assert.Equal([1.0, 2.0], p.Cases[1].InputUpper);
    }
}
