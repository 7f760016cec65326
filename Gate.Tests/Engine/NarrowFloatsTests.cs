using Gate.Core.Engine;
using Gate.Core.Tensors;

namespace Gate.Tests.Engine;

/// <summary>The narrow float formats: every code decodes to a value that rounds back to itself, and rounding picks the nearest value.</summary>
public class NarrowFloatsTests
{
    [Theory]
    [InlineData(DType.Float8E4M3FN, 8, 448f)]
    [InlineData(DType.Float8E4M3FNUZ, 8, 240f)]
    [InlineData(DType.Float8E5M2, 8, 57344f)]
    [InlineData(DType.Float8E5M2FNUZ, 8, 57344f)]
    [InlineData(DType.Float4E2M1, 4, 6f)]
    public void Every_code_round_trips_and_the_largest_finite_value_is_the_specified_one(DType type, int bits, float max)
    {
        var finite = new List<float>();
        for (int code = 0; code < 1 << bits; code++)
        {
            float v = NarrowFloats.Decode(type, code);
            if (float.IsNaN(v)) continue;
            // Infinity (E5M2 only) survives only without saturation, which by definition maps it to the largest value.
            Assert.Equal(v, NarrowFloats.Round([v], type, saturate: float.IsFinite(v))[0]);
            if (float.IsFinite(v)) finite.Add(v);
        }
        Assert.Equal(max, finite.Max());
        Assert.Equal(-max, finite.Min());
    }

    [Fact]
    public void Rounding_goes_to_the_nearest_value_with_ties_to_even_and_saturates()
    {
        // E4M3FN near 1: spacing 1/8. 1.0625 is halfway between 1 (mantissa 000) and 1.125 (001): ties to even → 1.
        Assert.Equal(1f, NarrowFloats.Round([1.0625f], DType.Float8E4M3FN)[0]);
        Assert.Equal(1.125f, NarrowFloats.Round([1.07f], DType.Float8E4M3FN)[0]);
        Assert.Equal(448f, NarrowFloats.Round([1e6f], DType.Float8E4M3FN)[0]);
        Assert.True(float.IsNaN(NarrowFloats.Round([1e6f], DType.Float8E4M3FN, saturate: false)[0]));
        Assert.Equal(float.PositiveInfinity, NarrowFloats.Round([1e6f], DType.Float8E5M2, saturate: false)[0]);
        Assert.Equal(1f, NarrowFloats.Round([1.0004f], DType.BFloat16)[0]);
        Assert.Equal((float)(Half)0.1f, NarrowFloats.Round([0.1f], DType.Float16)[0]);
    }
}
