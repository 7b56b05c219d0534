using System.Security.Cryptography;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>The managed SHA-256 of the re-laid weights cache gives OpenSSL's digests, whole and fed in pieces.</summary>
public sealed class Sha256Tests
{
    [Fact]
    public void KnownAnswers()
    {
        // FIPS 180-2's examples: "abc" and the 448-bit message (two blocks after padding).
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            Convert.ToHexStringLower(Sputnik.Models.Sha256.HashData("abc"u8)));
        Assert.Equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            Convert.ToHexStringLower(Sputnik.Models.Sha256.HashData("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"u8)));
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            Convert.ToHexStringLower(Sputnik.Models.Sha256.HashData([])));
    }

    [Fact]
    public void EveryLengthAroundTheBlockAndPaddingEdgesMatchesTheFramework()
    {
        var rng = new Random(7);
        var data = new byte[3 << 20];
        rng.NextBytes(data);
        int[] lengths = [.. Enumerable.Range(0, 200), 447, 448, 511, 512, 513, 4095, 65536 + 55, 1 << 20, data.Length];
        foreach (int n in lengths)
            Assert.Equal(SHA256.HashData(data.AsSpan(0, n)), Sputnik.Models.Sha256.HashData(data.AsSpan(0, n)));
    }

    [Fact]
    public void PiecesOfAnySizeGiveTheWholeDigestAndTheHasherStartsOver()
    {
        var rng = new Random(11);
        var data = new byte[100_000];
        rng.NextBytes(data);
        var sha = new Sputnik.Models.Sha256();
        for (int round = 0; round < 3; round++)
        {
            for (int at = 0; at < data.Length;)
            {
                int n = Math.Min(rng.Next(0, 300), data.Length - at);
                sha.AppendData(data.AsSpan(at, n));
                at += n;
            }
            Assert.Equal(SHA256.HashData(data), sha.GetHashAndReset()); // reset: the next round starts from scratch
        }
    }
}
