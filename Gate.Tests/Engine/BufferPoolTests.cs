using Gate.Core.Engine;

namespace Gate.Tests.Engine;

/// <summary>The engine's pool of float arrays between passes: what it keeps, and that it never keeps past its bounds.</summary>
public class BufferPoolTests
{
    [Fact]
    public void Returned_arrays_are_reused_up_to_the_count_per_length()
    {
        var pool = new BufferPool();
        var arrays = Enumerable.Range(0, BufferPool.KeepPerLength + 5).Select(_ => pool.Rent(4096)).ToList();
        foreach (var a in arrays) pool.Return(a);
        Assert.Equal((long)BufferPool.KeepPerLength * 4096 * sizeof(float), pool.FreeBytes);
        var again = Enumerable.Range(0, BufferPool.KeepPerLength + 5).Select(_ => pool.Rent(4096)).ToList();
        // A ResNet pass holds ~30 activations of one shape: all of them come back from the pool on the next pass.
        Assert.Equal(BufferPool.KeepPerLength, again.Count(a => arrays.Contains(a, ReferenceEqualityComparer.Instance)));
        Assert.True(BufferPool.KeepPerLength >= 32, "fewer than a ResNet pass's activations of one shape");
        Assert.Equal(0, pool.FreeBytes);
    }

    [Fact]
    public void The_pool_never_keeps_more_than_its_byte_bound()
    {
        var pool = new BufferPool();
        int length = (int)(BufferPool.MaxFreeBytes / sizeof(float) / 3) + 1; // three of these are over the bound
        var arrays = Enumerable.Range(0, 3).Select(_ => pool.Rent(length)).ToList();
        foreach (var a in arrays) pool.Return(a);
        Assert.Equal(2L * length * sizeof(float), pool.FreeBytes);
        Assert.True(pool.FreeBytes <= BufferPool.MaxFreeBytes);
    }
}
