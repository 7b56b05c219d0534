using System.Runtime.InteropServices;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>The slabs of experts re-laid at first use: aligned, disjoint ranges, 2 MiB-aligned slab starts, a new slab when one is full, nothing past a slab's size.</summary>
public sealed unsafe class RelayArenaTests
{
    [Fact]
    public void Rents_are_aligned_disjoint_and_fill_a_slab_before_the_next()
    {
        var arena = new RelayArena();
        const long bytes = 300_000; // not a multiple of 64: the next rent must still be aligned
        var rents = new List<(byte[] Slab, long Start)>();
        for (int i = 0; i < 40; i++)
        {
            var slab = arena.Rent(bytes, out int offset);
            long start = (long)Marshal.UnsafeAddrOfPinnedArrayElement(slab, offset);
            Assert.Equal(0, start % 64);
            Assert.True(offset + bytes <= slab.Length, $"rent {i} ends past its slab");
            rents.Add((slab, start));
        }
        var slabs = rents.Select(r => r.Slab).Distinct().ToList();
        Assert.True(slabs.Count >= 2, "40 rents of 300 KB fit one 4–64 MiB slab of 32 matrices");
        foreach (var slab in slabs)
        {
            var starts = rents.Where(r => ReferenceEquals(r.Slab, slab)).Select(r => r.Start).ToList();
            Assert.Equal(0, starts[0] % (2L << 20)); // each slab's first matrix starts on a huge-page boundary
            for (int i = 1; i < starts.Count; i++) Assert.True(starts[i] - starts[i - 1] >= bytes, "overlapping rents");
        }
    }

    [Fact]
    public void A_matrix_larger_than_a_slab_is_not_rented()
    {
        var arena = new RelayArena();
        Assert.True(RelayArena.Holds(64L << 20));
        Assert.False(RelayArena.Holds((64L << 20) + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => arena.Rent((64L << 20) + 1, out _));
    }
}
