using System.Buffers.Binary;
using System.Numerics;

namespace Sputnik.Models;

/// <summary>
/// SHA-256 (FIPS 180-4) in managed code, for the re-laid weights cache's digests (<see cref="RelaidCache"/>). .NET's
/// SHA256 calls OpenSSL on Linux, and loading libcrypto, libssl and their .NET wrapper added ≈ 5 MB of code to the
/// resident set of every model load, only to hash a few MB of GGUF header. Same digests as SHA256.HashData (tested).
/// </summary>
internal sealed class Sha256
{
    public const int HashSizeInBytes = 32;

    // The standard's constants: the first 32 bits of the fractional parts of the square roots of the first 8 primes
    // (initial hash) and of the cube roots of the first 64 primes (round constants). Double precision leaves ≥ 48
    // fraction bits for these roots, so the truncation is exact (the tests compare digests with OpenSSL's).
    private static readonly uint[] Initial = Fractions(8, Math.Sqrt);
    private static readonly uint[] Round = Fractions(64, Math.Cbrt);

    private readonly uint[] _state = new uint[8];
    private readonly uint[] _schedule = new uint[64];
    private readonly byte[] _block = new byte[64];
    private int _filled;
    private long _bytes;

    public Sha256() => Reset();

    /// <summary>The digest of <paramref name="data"/>.</summary>
    public static byte[] HashData(ReadOnlySpan<byte> data)
    {
        var sha = new Sha256();
        sha.AppendData(data);
        return sha.GetHashAndReset();
    }

    public void AppendData(ReadOnlySpan<byte> data)
    {
        _bytes += data.Length;
        if (_filled > 0)
        {
            int take = Math.Min(64 - _filled, data.Length);
            data[..take].CopyTo(_block.AsSpan(_filled));
            _filled += take;
            data = data[take..];
            if (_filled < 64) return;
            Compress(_block);
            _filled = 0;
        }
        for (; data.Length >= 64; data = data[64..]) Compress(data[..64]);
        data.CopyTo(_block);
        _filled = data.Length;
    }

    /// <summary>The digest of everything appended since the last reset; starts over.</summary>
    public byte[] GetHashAndReset()
    {
        long bits = _bytes * 8;
        Span<byte> pad = stackalloc byte[72];
        int padLength = (_filled < 56 ? 56 : 120) - _filled; // a 1 bit, zeros, then the length in the last 8 bytes of a block
        pad.Clear();
        pad[0] = 0x80;
        BinaryPrimitives.WriteInt64BigEndian(pad[padLength..], bits);
        AppendData(pad[..(padLength + 8)]);
        var digest = new byte[HashSizeInBytes];
        for (int i = 0; i < 8; i++) BinaryPrimitives.WriteUInt32BigEndian(digest.AsSpan(4 * i), _state[i]);
        Reset();
        return digest;
    }

    private void Reset()
    {
        Initial.CopyTo(_state, 0);
        _filled = 0;
        _bytes = 0;
    }

    private void Compress(ReadOnlySpan<byte> block)
    {
        var w = _schedule;
        for (int t = 0; t < 16; t++) w[t] = BinaryPrimitives.ReadUInt32BigEndian(block[(4 * t)..]);
        for (int t = 16; t < 64; t++)
        {
            uint s0 = BitOperations.RotateRight(w[t - 15], 7) ^ BitOperations.RotateRight(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint s1 = BitOperations.RotateRight(w[t - 2], 17) ^ BitOperations.RotateRight(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint a = _state[0], b = _state[1], c = _state[2], d = _state[3], e = _state[4], f = _state[5], g = _state[6], h = _state[7];
        for (int t = 0; t < 64; t++)
        {
            uint t1 = h + (BitOperations.RotateRight(e, 6) ^ BitOperations.RotateRight(e, 11) ^ BitOperations.RotateRight(e, 25))
                + ((e & f) ^ (~e & g)) + Round[t] + w[t];
            uint t2 = (BitOperations.RotateRight(a, 2) ^ BitOperations.RotateRight(a, 13) ^ BitOperations.RotateRight(a, 22))
                + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1;
            d = c; c = b; b = a; a = t1 + t2;
        }
        _state[0] += a; _state[1] += b; _state[2] += c; _state[3] += d;
        _state[4] += e; _state[5] += f; _state[6] += g; _state[7] += h;
    }

    // The first 32 fraction bits of root(p) for the first count primes.
    private static uint[] Fractions(int count, Func<double, double> root)
    {
        var values = new uint[count];
        for (int p = 2, found = 0; found < count; p++)
        {
            bool prime = true;
            for (int q = 2; q * q <= p; q++) prime &= p % q != 0;
            if (!prime) continue;
            double r = root(p);
            values[found++] = (uint)((r - Math.Floor(r)) * 4294967296.0);
        }
        return values;
    }
}
