using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// The L1 and L2 sizes that size attention's passes and F16 prefill's token tiles: sysfs's forms parsed, and the values
/// read here sane.
/// </summary>
public class CacheSizesTests
{
    [Theory]
    [InlineData("2048K\n", 2 << 20)]
    [InlineData("1M", 1 << 20)]
    [InlineData("524288", 512 << 10)]
    [InlineData("", null)]
    [InlineData("K", null)]
    [InlineData("-4K", null)]
    [InlineData("99999999999M", null)]
    public void Sysfs_sizes_parse(string text, int? bytes) => Assert.Equal(bytes, CacheSizes.ParseSize(text));

    [Fact]
    public void The_L2_size_read_here_is_within_bounds()
    {
        Assert.InRange(CacheSizes.L2Bytes, 256 << 10, 4 << 20);
        const string l2 = "/sys/devices/system/cpu/cpu0/cache/index2";
        if (!File.Exists(Path.Combine(l2, "size"))) Assert.Skip("no sysfs cache description here: the 1 MiB default is used");
        if (File.ReadAllText(Path.Combine(l2, "level")).Trim() == "2" && CacheSizes.ParseSize(File.ReadAllText(Path.Combine(l2, "size"))) is int bytes)
            Assert.Equal(Math.Clamp(bytes, 256 << 10, 4 << 20), CacheSizes.L2Bytes);
    }

    [Fact]
    public void The_L1_data_size_read_here_is_within_bounds()
    {
        Assert.InRange(CacheSizes.L1Bytes, 16 << 10, 128 << 10);
        const string l1d = "/sys/devices/system/cpu/cpu0/cache/index0";
        if (!File.Exists(Path.Combine(l1d, "size"))) Assert.Skip("no sysfs cache description here: the 32 KiB default is used");
        if (File.ReadAllText(Path.Combine(l1d, "level")).Trim() == "1" && File.ReadAllText(Path.Combine(l1d, "type")).Trim() == "Data"
            && CacheSizes.ParseSize(File.ReadAllText(Path.Combine(l1d, "size"))) is int bytes)
            Assert.Equal(Math.Clamp(bytes, 16 << 10, 128 << 10), CacheSizes.L1Bytes);
    }
}
